/**
 * Benchmark (not a test): the master's side (`agent fleet apply` / `fleet status --json`, one
 * Node process with an ssh2 connection per node) against the bare way, OpenSSH `ssh` run N-wide
 * in parallel, each running the node's CLI itself.
 *
 *   node --import tsx bench/fleet.bench.ts     (env: FLEET_BENCH_NODES, default "5,10,20";
 *                                               FLEET_BENCH_ROUNDS, default 3)
 *
 * For each N: a FleetLab (test/helpers/fleet.ts: a master network namespace and N node
 * namespaces, each with a real sshd and its own registry, made first). Everything that touches
 * the network runs inside the master namespace (`ip netns exec`), so no traffic leaves the
 * namespaces. The desired state is 5 container services placed on every node; no container is
 * ever started (no `run`, no agent loop), so status reports them drifted, which is fine: the
 * figures are of the fleet path, not of podman starting things.
 * Interleaved over the rounds (order rotated each round, after one discarded warm-up round):
 *   - fleet-apply:  `agent fleet apply -i INV -f DIR --parallel N --json`
 *   - ssh-apply:    N x `ssh ... root@NODE node bin/agent.js --db DB apply --origin master
 *                   --prune -f - --format json --json < bundle.json`, all in parallel (baseline)
 *   - fleet-status: `agent fleet status -i INV --parallel N --json`
 *   - ssh-status:   N x `ssh ... root@NODE node bin/agent.js --db DB status --json` (baseline)
 * Every apply (fleet or baseline) carries a new env value on all 5 services, so each one really
 * updates 5 services on every node; each answer is checked outside the timed region.
 * Breakdown probes for one node: its `status --json` run locally (no SSH), `ssh NODE true`
 * (OpenSSH handshake + session), `ssh NODE … status --json`, `fleet status --nodes ONE`
 * (the fleet CLI start + ssh2 handshake + the same remote status), and `node -e 0`.
 * Cleanup always runs (finally, SIGINT, SIGTERM): children ended by pid, every sshd stopped by
 * its pidfile, every namespace and temp dir removed (FleetLab.cleanup).
 * Requires dist/ (npm run build), root (namespaces), OpenSSH client and server.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildTracker, cleanUpOnSignals, type Ran } from './lib/children.js';
import { FleetLab, type LabNode } from '../test/helpers/fleet.js';
import { median, r1, r2 } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/agent.js');
const IMAGE = 'localhost/agent-busybox:latest';
const SIZES = (process.env.FLEET_BENCH_NODES ?? '5,10,20').split(',').map((s) => Number(s.trim()));
const ROUNDS = Number(process.env.FLEET_BENCH_ROUNDS ?? 3);
const WARMUP_ROUNDS = 1;
const SERVICES = 5;

for (const n of SIZES) if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`FLEET_BENCH_NODES: ${n} is not a whole number from 1 to 200 (e.g. FLEET_BENCH_NODES=5,10,20)`);

const log = (msg: string): void => void process.stderr.write(`fleet bench: ${msg}\n`);
const children = new ChildTracker({ cwd: ROOT, env: { ...process.env, AGENT_LOG_LEVEL: 'warn' } });
const must = (cmd: string, args: string[], timeoutMs = 300_000): Promise<Ran> => children.must(cmd, args, timeoutMs);

// ---- cleanup: the lab being built or in use, and our scratch dir ------------------------------

const scratch = mkdtempSync(join(tmpdir(), 'agent-bench-fleet-'));
let labInProgress: Promise<FleetLab> | undefined;

async function cleanLab(): Promise<void> {
  const pending = labInProgress;
  labInProgress = undefined;
  if (!pending) return;
  const lab = await pending.catch(() => undefined); // a failed create cleaned itself up
  await lab?.cleanup();
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await children.endAll(10_000);
    await cleanLab();
    rmSync(scratch, { recursive: true, force: true });
    log('cleanup: children ended, sshd stopped, namespaces and temp dirs removed');
  })();
  return cleaning;
}
const signals = cleanUpOnSignals(log, cleanup);


// ---- one lab size ---------------------------------------------------------------------------

type Probe = 'fleet-apply' | 'ssh-apply' | 'fleet-status' | 'ssh-status';
const PROBES: Probe[] = ['fleet-apply', 'ssh-apply', 'fleet-status', 'ssh-status'];
type Single = 'node' | 'local-status' | 'ssh-true' | 'ssh-status-1' | 'fleet-status-1';
const SINGLES: Single[] = ['node', 'local-status', 'ssh-true', 'ssh-status-1', 'fleet-status-1'];

interface SizeResult {
  nodes: number;
  setupS: number;
  median: Record<Probe | Single, number>;
  samples: Record<Probe | Single, number[]>;
}

const quote = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;

async function benchSize(size: number): Promise<SizeResult | undefined> {
  const t0 = performance.now();
  const names = Array.from({ length: size }, (_, i) => `n${i}`);
  labInProgress = FleetLab.create(names);
  const lab = await labInProgress;
  const work = join(scratch, `n${size}`);
  mkdirSync(work);
  // Registries made first, with the local CLI (local files only, no network).
  for (const n of lab.nodes) await n.agent.cli(['events', '-n', '1', '--json']);
  const inv = lab.writeInventory();
  const knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, lab.nodes.map((n) => `${n.address} ${n.hostKeyLine}\n`).join(''));
  const sshArgs = ['-i', lab.masterKey, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  const serviceNames = Array.from({ length: SERVICES }, (_, i) => `fb${lab.id}s${i}`);
  const desired = join(work, 'desired');
  mkdirSync(desired);

  let revision = 0;
  const manifests = (rev: number): Array<Record<string, unknown>> =>
    serviceNames.map((name) => ({
      name,
      comment: 'fleet benchmark; removed with the lab',
      components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: ['sleep', '600'], env: { BENCH_REVISION: String(rev) } }],
    }));
  /** The next revision, written both as the fleet's desired-state dir and as the baseline's bundle. */
  const nextRevision = (): string => {
    revision++;
    for (const m of manifests(revision)) writeFileSync(join(desired, `${String(m.name)}.json`), JSON.stringify({ ...m, nodes: names }, null, 2));
    const bundle = join(work, `bundle-${revision}.json`);
    writeFileSync(bundle, JSON.stringify(manifests(revision)));
    return bundle;
  };

  /** A shell script, run in the master namespace, that runs one ssh per node in parallel and fails if any failed. */
  const sshScript = (nodes: LabNode[], remote: (n: LabNode) => string[], stdin: string | undefined, tag: string): string => {
    const out = join(work, `out-${tag}`);
    mkdirSync(out, { recursive: true });
    const lines = ['#!/bin/sh', 'pids=""', `trap 'kill $pids 2>/dev/null; exit 143' TERM INT`];
    for (const n of nodes) {
      const cmd = ['ssh', ...sshArgs, `root@${n.address}`, ...remote(n)].map(quote).join(' ');
      lines.push(`${cmd} <${stdin ? quote(stdin) : '/dev/null'} >${quote(join(out, n.name))} 2>${quote(join(out, `${n.name}.err`))} & pids="$pids $!"`);
    }
    lines.push('fail=0', 'for p in $pids; do wait $p || fail=1; done', 'exit $fail', '');
    const file = join(work, `ssh-${tag}.sh`);
    writeFileSync(file, lines.join('\n'));
    return file;
  };
  const inMaster = (cmd: string, args: string[]): Promise<Ran> => must('ip', ['netns', 'exec', lab.masterNs, cmd, ...args]);
  const remoteAgent = (n: LabNode): string[] => ['node', BIN, '--db', n.agent.db];
  const outputs = (tag: string): Array<[string, string]> => lab.nodes.map((n) => [n.name, readFileSync(join(work, `out-${tag}`, n.name), 'utf8')]);

  const checkApply = (rows: Array<[string, string]>, what: string): void => {
    for (const [node, out] of rows) {
      let r: { created: string[]; updated: unknown[]; unchanged: string[] };
      try {
        r = JSON.parse(out) as typeof r;
      } catch {
        throw new Error(`${what}: node ${node} answered no JSON: ${out.slice(0, 500)}`);
      }
      if (r.created.length + r.updated.length !== SERVICES) throw new Error(`${what}: node ${node} created ${r.created.length} and updated ${r.updated.length}, expected ${SERVICES} changed: ${out.slice(0, 500)}`);
    }
  };
  const checkStatus = (rows: Array<[string, string]>, what: string): void => {
    for (const [node, out] of rows) {
      const r = JSON.parse(out) as { components: unknown[] };
      if (r.components.length !== SERVICES) throw new Error(`${what}: node ${node} reports ${r.components.length} components, expected ${SERVICES}`);
    }
  };

  const statusScript = sshScript(lab.nodes, (n) => [...remoteAgent(n), 'status', '--json'], undefined, 'status');
  const first = lab.nodes[0]!;
  const trueScript = sshScript([first], () => ['true'], undefined, 'true');
  const status1Script = sshScript([first], (n) => [...remoteAgent(n), 'status', '--json'], undefined, 'status1');

  const probes: Record<Probe | Single, () => Promise<Ran>> = {
    'fleet-apply': async () => {
      nextRevision();
      const r = await inMaster('node', [BIN, 'fleet', 'apply', '-i', inv, '-f', desired, '--parallel', String(size), '--json']);
      const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; value?: unknown; error?: string }>;
      if (rows.length !== size || rows.some((x) => !x.ok)) throw new Error(`fleet apply: ${r.stdout.slice(0, 2000)}`);
      checkApply(rows.map((x) => [x.node, JSON.stringify(x.value)]), 'fleet apply');
      return r;
    },
    'ssh-apply': async () => {
      const bundle = nextRevision();
      const script = sshScript(lab.nodes, (n) => [...remoteAgent(n), 'apply', '--origin', 'master', '--prune', '-f', '-', '--format', 'json', '--json'], bundle, 'apply');
      const r = await inMaster('sh', [script]);
      checkApply(outputs('apply'), 'ssh apply');
      return r;
    },
    'fleet-status': async () => {
      const r = await inMaster('node', [BIN, 'fleet', 'status', '-i', inv, '--parallel', String(size), '--json']);
      const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; value?: { drifted: number } }>;
      if (rows.length !== size || rows.some((x) => !x.ok || x.value?.drifted !== SERVICES)) throw new Error(`fleet status: ${r.stdout.slice(0, 2000)}`);
      return r;
    },
    'ssh-status': async () => {
      const r = await inMaster('sh', [statusScript]);
      checkStatus(outputs('status'), 'ssh status');
      return r;
    },
    node: () => must(process.execPath, ['-e', '0']),
    'local-status': () => must(process.execPath, [BIN, '--db', first.agent.db, 'status', '--json']),
    'ssh-true': () => inMaster('sh', [trueScript]),
    'ssh-status-1': () => inMaster('sh', [status1Script]),
    'fleet-status-1': () => inMaster('node', [BIN, 'fleet', 'status', '-i', inv, '--nodes', first.name, '--json']),
  };

  const all = [...PROBES, ...SINGLES];
  const samples = Object.fromEntries(all.map((p) => [p, [] as number[]])) as Record<Probe | Single, number[]>;
  const setupS = (performance.now() - t0) / 1000;
  log(`N=${size}: lab ready in ${setupS.toFixed(1)} s (master ns ${lab.masterNs}), ${ROUNDS} rounds after ${WARMUP_ROUNDS} warm-up`);
  for (let round = -WARMUP_ROUNDS; round < ROUNDS; round++) {
    if (signals.interrupted) return undefined;
    const k = Math.max(round, 0);
    const order = PROBES.map((_, i) => PROBES[(i + k) % PROBES.length]!);
    const got: Partial<Record<Probe | Single, number>> = {};
    for (const p of [...order, ...SINGLES]) got[p] = (await probes[p]()).ms;
    if (round < 0) {
      log(`N=${size}: warm-up round done`);
      continue;
    }
    for (const p of all) samples[p].push(got[p]!);
    log(`N=${size} round ${round + 1}/${ROUNDS}: ${all.map((p) => `${p} ${got[p]!.toFixed(0)}`).join(', ')} ms`);
  }
  await cleanLab();
  const med = Object.fromEntries(all.map((p) => [p, median(samples[p])])) as Record<Probe | Single, number>;
  return { nodes: size, setupS, median: med, samples };
}

// ---- the benchmark --------------------------------------------------------------------------

async function bench(): Promise<void> {
  const results: SizeResult[] = [];
  for (const size of SIZES) {
    const r = await benchSize(size);
    if (!r) return;
    results.push(r);
  }
  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  console.log(`fleet benchmark: ${SERVICES} services per node, ${ROUNDS} interleaved rounds after ${WARMUP_ROUNDS} warm-up, median wall ms (node ${process.version})`);
  console.log(`${'N'.padStart(3)} ${'what'.padEnd(7)} ${pad('fleet', 8)} ${pad('ssh xN', 8)} ${pad('ratio', 6)}`);
  for (const r of results) {
    const m = r.median;
    console.log(`${pad(r.nodes, 3)} ${'apply'.padEnd(7)} ${pad(m['fleet-apply'].toFixed(0), 8)} ${pad(m['ssh-apply'].toFixed(0), 8)} ${pad((m['fleet-apply'] / m['ssh-apply']).toFixed(2), 6)}`);
    console.log(`${pad(r.nodes, 3)} ${'status'.padEnd(7)} ${pad(m['fleet-status'].toFixed(0), 8)} ${pad(m['ssh-status'].toFixed(0), 8)} ${pad((m['fleet-status'] / m['ssh-status']).toFixed(2), 6)}`);
  }
  console.log('where the time goes (one node, median ms per N):');
  console.log(`${'N'.padStart(3)} ${SINGLES.map((s) => pad(s, 15)).join('')}`);
  for (const r of results) console.log(`${pad(r.nodes, 3)} ${SINGLES.map((s) => pad(r.median[s].toFixed(0), 15)).join('')}`);
  console.log(
    JSON.stringify({
      bench: 'fleet',
      node: process.version,
      services: SERVICES,
      rounds: ROUNDS,
      warmup_rounds: WARMUP_ROUNDS,
      sizes: results.map((r) => ({
        nodes: r.nodes,
        setup_s: r1(r.setupS),
        median_ms: Object.fromEntries(Object.entries(r.median).map(([k, v]) => [k, r1(v)])),
        samples_ms: Object.fromEntries(Object.entries(r.samples).map(([k, v]) => [k, v.map(r1)])),
        apply_ratio: r2(r.median['fleet-apply'] / r.median['ssh-apply']),
        status_ratio: r2(r.median['fleet-status'] / r.median['ssh-status']),
      })),
    }),
  );
}

let failed = false;
try {
  await bench();
} catch (err) {
  failed = true;
  process.stderr.write(`fleet bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanup();
}
if (failed) process.exitCode = 1;
