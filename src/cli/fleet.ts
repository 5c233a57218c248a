/**
 * `agent fleet …`: the master's commands. Thin like the rest of the CLI: it reads the inventory
 * and the desired state (every input validated before any node is contacted: exit 2), calls
 * src/fleet, and prints one line or row per node. Exit 1 when any node failed.
 */
import { Command, Option } from 'commander';
import { ValidationError } from '../errors.js';
import { loadInventory, requirePinned, selectNodes, type FleetNode, type Inventory } from '../fleet/inventory.js';
import { fleetApply, fleetEvents, fleetStatus, parseTimeout, type ApplyResult, type NodeResult, type NodeStatus } from '../fleet/operations.js';
import { loadDesiredDir, place } from '../fleet/placement.js';
import { eachNode } from '../fleet/pool.js';
import { scanHostKey } from '../fleet/transport.js';
import { progressText, waitForConvergence, waitLine, type WaitResult } from '../fleet/wait.js';
import { DEFAULT_BUCKET } from '../nats/keys.js';
import { LiveLines } from './live-lines.js';
import { ago, applyCounts, table } from './format.js';
import { print } from './output.js';


interface CommonOpts {
  inventory: string;
  timeout: string;
  parallel: string;
}

function common(opts: CommonOpts): { inv: Inventory; timeoutMs: number; parallel: number } {
  const timeoutMs = parseTimeout(opts.timeout);
  if (timeoutMs === undefined) throw new ValidationError('fleet', [{ field: '--timeout', rule: `must be a duration like 30s, 500ms or 2m, got '${opts.timeout}'` }]);
  const parallel = Number(opts.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 1024) throw new ValidationError('fleet', [{ field: '--parallel', rule: 'must be a whole number from 1 to 1024' }]);
  return { inv: loadInventory(opts.inventory), timeoutMs, parallel };
}

function withCommon(c: Command): Command {
  return c
    .requiredOption('-i, --inventory <file>', 'the fleet inventory (.toml, .yaml, .json)')
    .option('--timeout <duration>', 'per node: a node slower than this fails alone', '30s')
    .option('--parallel <n>', 'nodes contacted at once', '16');
}

function applyLine(r: NodeResult<ApplyResult>): string {
  if (!r.ok) return `${r.node}: FAILED (${r.kind}) ${r.error}`;
  return `${r.node}: ${r.value.dry_run ? 'would apply' : 'ok'} ${applyCounts(r.value)}`;
}

type PlaceOpts = CommonOpts & { file: string; nodes?: string; selector?: string; allowUnplaced?: boolean; allowEmpty?: boolean; json?: boolean; wait?: boolean; waitTimeout: string } & NatsFlags;

/** `--nats` switches a command from SSH to the fleet's NATS bucket (src/cli/fleet-nats.ts). */
interface NatsFlags {
  nats?: string;
  bucket: string;
  replicas: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
}

const natsOpts = (c: Command): Command =>
  c
    .option('--nats <urls>', 'go through this NATS JetStream KV bucket instead of SSH: server URLs, comma-separated (nats://host:4222); the inventory then needs only names and labels')
    .option('--bucket <name>', 'with --nats: the KV bucket', DEFAULT_BUCKET)
    .option('--nats-ca <file>', 'with --nats: the CA that signed the servers\' certificates (TLS)')
    .option('--nats-cert <file>', 'with --nats: this master\'s client certificate, for servers that verify clients (with --nats-key)')
    .option('--nats-key <file>', 'with --nats: the client certificate\'s private key');

/** The TLS flags mean nothing over SSH: refused there rather than silently ignored. */
function refuseNatsOnly(opts: NatsFlags): void {
  const given = (['natsCa', 'natsCert', 'natsKey'] as const).filter((k) => opts[k] !== undefined);
  if (given.length > 0) throw new ValidationError('fleet', given.map((k) => ({ field: `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, rule: 'needs --nats (SSH pins host keys instead)' })));
}

async function applyOrPlan(opts: PlaceOpts, dryRun: boolean): Promise<void> {
  if (opts.nats !== undefined) {
    const { natsApply } = await import('./fleet-nats.js'); // loads the NATS client only when used
    return natsApply({ ...opts, nats: opts.nats }, dryRun);
  }
  refuseNatsOnly(opts);
  const { inv, timeoutMs, parallel } = common(opts);
  const waitTimeoutMs = parseTimeout(opts.waitTimeout);
  if (waitTimeoutMs === undefined) throw new ValidationError('fleet', [{ field: '--wait-timeout', rule: `must be a duration like 2m, 90s or 500ms, got '${opts.waitTimeout}'` }]);
  const wait = !dryRun && (opts.wait ?? false);
  const services = loadDesiredDir(opts.file);
  // Placement is checked against the whole inventory: a selection only limits who is contacted.
  const perNode = place(services, inv.nodes, { allowUnplaced: opts.allowUnplaced ?? false });
  const targets = selectNodes(inv, opts);
  if (targets.length === 0) throw new ValidationError('fleet', [{ field: '--selector', rule: 'selects no node of the inventory' }]);
  requirePinned(inv, targets);
  const results = await fleetApply(targets, perNode, { timeoutMs, parallel, dryRun, allowEmpty: opts.allowEmpty ?? false });
  if (!opts.json) for (const r of results) print(applyLine(r));
  if (results.some((r) => !r.ok)) process.exitCode = 1;
  if (!wait) {
    if (opts.json) print(JSON.stringify(results, null, 2));
    return;
  }
  // --wait: only the nodes that took their set are waited on; a failed apply already fails the run.
  const applied = targets.filter((n) => results.some((r) => r.node === n.name && r.ok));
  const progress = new LiveLines(process.stderr, applied.map((n) => [n.name, 'waiting']));
  let waited: WaitResult[];
  try {
    waited = await waitForConvergence(applied, { callTimeoutMs: timeoutMs, waitTimeoutMs, parallel, onProgress: (node, state) => progress.set(node, progressText(state)) });
  } finally {
    progress.finish();
  }
  if (opts.json) print(JSON.stringify({ apply: results, wait: waited }, null, 2));
  else for (const w of waited) print(waitLine(w, waitTimeoutMs));
  const late = waited.filter((w) => !w.converged);
  if (late.length > 0) {
    process.stderr.write(`agent: ${late.length} node(s) did not converge within --wait-timeout ${opts.waitTimeout}: ${late.map((w) => w.node).join(', ')} (see \`agent fleet status --detail\`)\n`);
    process.exitCode = 1;
  }
}

function statusTable(results: NodeResult<NodeStatus>[], detail: boolean): string {
  const t = table(['NODE', 'REACHABLE', 'AGENT', 'LAST PASS', 'IN SYNC', 'DRIFTED', 'RUNTIMES']);
  for (const r of results) {
    if (!r.ok) t.push([r.node, `no (${r.kind})`, '-', '-', '-', '-', r.error]);
    else {
      const v = r.value;
      const rts = Object.entries(v.runtimes).map(([k, h]) => `${k} ${h.ok ? 'ok' : 'UNAVAILABLE'}`).join(', ') || '-';
      t.push([r.node, 'yes', v.agentRunning ? 'running' : 'not running', ago(v.lastPassAt), String(v.inSync), String(v.drifted), rts]);
    }
  }
  const lines = [t.toString()];
  if (detail) {
    const d = table(['NODE', 'COMPONENT', 'DRIFT', 'REASON']);
    let any = false;
    for (const r of results) if (r.ok) for (const c of r.value.driftedComponents) (any = true), d.push([r.node, c.component, c.drift, c.reason || '-']);
    lines.push('', any ? d.toString() : 'no drifted components');
  }
  return lines.join('\n');
}

export function fleetCommand(): Command {
  const fleet = new Command('fleet').description('the master\'s side: push desired state to nodes over SSH (pinned host keys) or through a NATS JetStream KV bucket (--nats), and see their drift')
    .showHelpAfterError()
    .exitOverride(); // subcommands inherit this: usage errors reach main() as exit 2, never process.exit

  withCommon(fleet.command('keyscan'))
    .description('print each node\'s SSH host key (name key-line) to check and paste as host_key; writes nothing')
    .argument('[nodes...]', 'node names (default: every node)')
    .option('--json', 'print JSON: [{ node, ok, key | error }]')
    .action(async (names: string[], opts: CommonOpts & { json?: boolean }) => {
      const { inv, timeoutMs, parallel } = common(opts);
      const nodes: FleetNode[] = names.length ? selectNodes(inv, { nodes: names.join(',') }) : inv.nodes;
      const results = await eachNode(nodes, parallel, (n) => scanHostKey(n, timeoutMs));
      if (results.some((r) => !r.ok)) process.exitCode = 1;
      if (opts.json) {
        print(JSON.stringify(results.map((r, i) => (r.ok ? { node: nodes[i]!.name, ok: true, key: r.value } : { node: nodes[i]!.name, ok: false, error: r.error.message })), null, 2));
        return;
      }
      results.forEach((r, i) => {
        const n = nodes[i]!;
        if (r.ok) print(`${n.name} ${r.value}`);
        else {
          process.stderr.write(`agent: ${r.error.message}\n`);
          process.exitCode = 1;
        }
      });
    });

  natsOpts(withCommon(fleet.command('status')))
    .description('every node\'s status, fetched in parallel: reachable, agent running, last pass, in-sync / drifted counts, runtimes (with --nats: each node\'s status.<node> key, stale after 30 s)')
    .option('--json', 'print JSON')
    .option('--check', 'exit 1 when any node is unreachable or has a drifted component (with --nats: stale, never reported, unparsable, drifted, or a refused key)')
    .option('--detail', 'also list each node\'s drifted components')
    .option('--nodes <names>', 'only these nodes (comma-separated)')
    .option('--selector <k=v,...>', 'only nodes with these labels')
    .action(async (opts: CommonOpts & NatsFlags & { json?: boolean; check?: boolean; detail?: boolean; nodes?: string; selector?: string }) => {
      if (opts.nats !== undefined) {
        const { natsStatus } = await import('./fleet-nats.js');
        return natsStatus({ ...opts, nats: opts.nats });
      }
      refuseNatsOnly(opts);
      const { inv, timeoutMs, parallel } = common(opts);
      const nodes = selectNodes(inv, opts);
      requirePinned(inv, nodes);
      const results = await fleetStatus(nodes, { timeoutMs, parallel });
      print(opts.json ? JSON.stringify(results, null, 2) : statusTable(results, opts.detail ?? false));
      if (opts.check && results.some((r) => !r.ok || r.value.drifted > 0)) process.exitCode = 1;
    });

  const placeOpts = (c: Command): Command =>
    natsOpts(withCommon(c))
      .requiredOption('-f, --file <dir>', 'the desired-state directory: one service manifest per file, each with nodes = [...] and/or selector = {...}')
      .option('--nodes <names>', 'only these nodes (comma-separated)')
      .option('--selector <k=v,...>', 'only nodes with these labels')
      .option('--allow-unplaced', 'accept services that select no node')
      .option('--allow-empty', 'let a node whose set is empty prune every service the master gave it')
      .option('--json', 'print JSON');

  placeOpts(fleet.command('apply'))
    .option('--wait', 'then poll each applied node\'s status until every component is in sync; exit 1 naming the nodes that did not')
    .option('--wait-timeout <duration>', 'with --wait: how long to wait for every node, counted once from the end of the apply', '2m')
    .option('--replicas <n>', 'with --nats: the bucket\'s replicas when the master creates it (an existing bucket keeps its own)', '1')
    .description('send each selected node its whole service set in one call (one registry transaction there, pruning what the master no longer assigns); with --nats: write each service as key desired.<node>.<service>, each write conditional on the revision read')
    .action((opts: PlaceOpts) => applyOrPlan(opts, false));

  placeOpts(fleet.command('plan'))
    .description('what apply would create, update (fields) and prune on each node; changes nothing')
    .action((opts: PlaceOpts) => applyOrPlan({ ...opts, waitTimeout: '1s', replicas: '1' }, true));

  withCommon(fleet.command('events'))
    .description('the nodes\' newest events, merged by time')
    .addOption(new Option('-n, --limit <n>', 'how many').default('20'))
    .option('--json', 'print JSON')
    .option('--nodes <names>', 'only these nodes (comma-separated)')
    .option('--selector <k=v,...>', 'only nodes with these labels')
    .action(async (opts: CommonOpts & { limit: string; json?: boolean; nodes?: string; selector?: string }) => {
      const { inv, timeoutMs, parallel } = common(opts);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new ValidationError('fleet events', [{ field: '--limit', rule: 'must be a whole number from 1 to 100000' }]);
      const nodes = selectNodes(inv, opts);
      requirePinned(inv, nodes);
      const { events, failures } = await fleetEvents(nodes, limit, { timeoutMs, parallel });
      if (opts.json) print(JSON.stringify({ events, failures }, null, 2));
      else {
        const t = table(['TIME', 'NODE', 'COMPONENT', 'ACTION', 'OUTCOME', 'REASON', 'MESSAGE']);
        for (const e of [...events].reverse()) t.push([e.at, e.node, e.service ? `${e.service}/${e.component}` : e.workload ?? '-', e.action, e.outcome, e.reason || '-', e.message || '-']);
        print(events.length ? t.toString() : 'no events');
        for (const f of failures) if (!f.ok) process.stderr.write(`agent: node ${f.node}: ${f.error}\n`);
      }
      if (failures.length > 0) process.exitCode = 1;
    });

  return fleet;
}
