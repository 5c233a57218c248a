/**
 * `fleet apply|plan|status --nats URL`: the master's side through the NATS JetStream KV bucket
 * instead of SSH. The same inventory (names and labels only), placement and selection as the
 * SSH path, validated before any connection (exit 2); one line or row per node; exit 1 when a
 * node failed (or, with --check, needs attention), and when NATS cannot be reached at all.
 */
import { ValidationError } from '../errors.js';
import { loadNatsInventory, selectNodes } from '../fleet/inventory.js';
import { fleetApplyNats, type NatsApplyResult } from '../fleet/nats-apply.js';
import { checkBucket, checkTls, connectNats, openBucket, parseNatsUrls, readKeys, type MasterTls } from '../fleet/nats-client.js';
import { judgeFleet, needsAttention, type NatsNodeReport } from '../fleet/nats-status.js';
import { parseTimeout } from '../fleet/operations.js';
import { loadDesiredDir, place } from '../fleet/placement.js';
import { parseStatusKey, STATUS_FILTER } from '../nats/keys.js';
import { ago, applyCounts, table } from './format.js';
import { print } from './output.js';


/** How many revisions of each key the bucket keeps when the master creates it. */
export const BUCKET_HISTORY = 5;

export interface NatsOpts {
  inventory: string;
  nats: string;
  bucket: string;
  timeout: string;
  parallel: string;
  nodes?: string;
  selector?: string;
  json?: boolean;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
}

function common(opts: NatsOpts): { urls: string[]; bucket: string; timeoutMs: number; parallel: number; tls: MasterTls | undefined } {
  const timeoutMs = parseTimeout(opts.timeout);
  if (timeoutMs === undefined) throw new ValidationError('fleet', [{ field: '--timeout', rule: `must be a duration like 30s, 500ms or 2m, got '${opts.timeout}'` }]);
  const parallel = Number(opts.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 1024) throw new ValidationError('fleet', [{ field: '--parallel', rule: 'must be a whole number from 1 to 1024' }]);
  const tls = checkTls({ ca: opts.natsCa, cert: opts.natsCert, key: opts.natsKey });
  return { urls: parseNatsUrls(opts.nats), bucket: checkBucket(opts.bucket), timeoutMs, parallel, tls };
}

export function natsApplyLine(r: NatsApplyResult): string {
  const done = applyCounts(r);
  if (r.refused) return `${r.node}: FAILED (refused) ${r.refused}`;
  if (!r.ok) {
    const kind = r.failed.some((f) => f.kind === 'conflict') ? 'conflict' : 'error';
    return `${r.node}: FAILED (${kind}) ${r.failed.map((f) => f.error).join('; ')}; ${r.dry_run ? 'would have' : 'done meanwhile:'} ${done}`;
  }
  return `${r.node}: ${r.dry_run ? 'would apply' : 'ok'} ${done}`;
}

export type NatsApplyOpts = NatsOpts & { file: string; allowUnplaced?: boolean; allowEmpty?: boolean; replicas: string; wait?: boolean };

export async function natsApply(opts: NatsApplyOpts, dryRun: boolean): Promise<void> {
  const { urls, bucket, timeoutMs, parallel, tls } = common(opts);
  const replicas = Number(opts.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new ValidationError('fleet', [{ field: '--replicas', rule: 'must be a whole number from 1 to 5 (JetStream\'s limit; at most the cluster\'s server count)' }]);
  if (opts.wait) throw new ValidationError('fleet', [{ field: '--wait', rule: 'is not supported with --nats yet: follow with `agent fleet status --nats … --check`' }]);
  const inv = loadNatsInventory(opts.inventory);
  const services = loadDesiredDir(opts.file);
  // Placement is checked against the whole inventory: a selection only limits whose keys change.
  const perNode = place(services, inv.nodes, { allowUnplaced: opts.allowUnplaced ?? false });
  const targets = selectNodes(inv, opts);
  if (targets.length === 0) throw new ValidationError('fleet', [{ field: '--selector', rule: 'selects no node of the inventory' }]);
  const nc = await connectNats(urls, timeoutMs, tls);
  try {
    // A dry run creates nothing, not even the bucket.
    const kv = await openBucket(nc, bucket, { timeoutMs, ...(dryRun ? {} : { create: { replicas, history: BUCKET_HISTORY } }) });
    const results = await fleetApplyNats(kv, targets.map((n) => n.name), (n) => (perNode.get(n) ?? []).map((s) => ({ name: s.name, manifest: s.manifest })), { timeoutMs, parallel, dryRun, allowEmpty: opts.allowEmpty ?? false });
    print(opts.json ? JSON.stringify(results, null, 2) : results.map(natsApplyLine).join('\n'));
    if (results.some((r) => !r.ok)) process.exitCode = 1;
  } finally {
    await nc.close();
  }
}

const STATE_TEXT: Record<NatsNodeReport['state'], string> = { reporting: 'reporting', stale: 'STALE', 'never-reported': 'never reported', unparsable: 'UNPARSABLE' };

function statusTable(reports: NatsNodeReport[], detail: boolean, now: number): string {
  const t = table(['NODE', 'STATE', 'HEARTBEAT', 'LAST PASS', 'IN SYNC', 'DRIFTED', 'REVISION', 'RUNTIMES']);
  for (const r of reports) {
    const name = r.inInventory ? r.node : `${r.node} (not in inventory)`;
    const v = r.value;
    if (!v) t.push([name, STATE_TEXT[r.state], '-', '-', '-', '-', '-', r.error ?? '-']);
    else {
      const rts = Object.entries(v.runtimes).map(([k, h]) => `${k} ${h.ok ? 'ok' : 'UNAVAILABLE'}`).join(', ') || '-';
      const drifted = `${v.drifted}${v.rejected.length ? ` (+${v.rejected.length} refused key${v.rejected.length > 1 ? 's' : ''})` : ''}`;
      t.push([name, STATE_TEXT[r.state], ago(v.heartbeatAt, now), ago(v.lastPassAt, now), String(v.inSync), drifted, v.appliedRevision === null ? '-' : String(v.appliedRevision), rts]);
    }
  }
  const lines = [t.toString()];
  if (detail) {
    const d = table(['NODE', 'COMPONENT', 'DRIFT', 'REASON']);
    let any = false;
    for (const r of reports) {
      for (const c of r.value?.driftedComponents ?? []) (any = true), d.push([r.node, c.component, c.drift, c.reason || '-']);
      for (const k of r.value?.rejected ?? []) (any = true), d.push([r.node, k.key, `refused (revision ${k.revision})`, k.error]);
      if (r.value && r.value.driftedTotal > r.value.driftedComponents.length) (any = true), d.push([r.node, `… ${r.value.driftedTotal - r.value.driftedComponents.length} more`, '-', '-']);
    }
    lines.push('', any ? d.toString() : 'no drifted components');
  }
  return lines.join('\n');
}

export async function natsStatus(opts: NatsOpts & { check?: boolean; detail?: boolean }): Promise<void> {
  const { urls, bucket, timeoutMs, tls } = common(opts);
  const inv = loadNatsInventory(opts.inventory);
  const selected = selectNodes(inv, opts);
  const nc = await connectNats(urls, timeoutMs, tls);
  let reports: NatsNodeReport[];
  try {
    const kv = await openBucket(nc, bucket, { timeoutMs });
    if (!kv) process.stderr.write(`agent: bucket ${bucket} does not exist on ${nc.getServer()}: no agent or master has used it yet\n`);
    const entries = kv ? await readKeys(kv, STATUS_FILTER, timeoutMs) : new Map();
    const statuses = new Map([...entries].flatMap(([k, e]) => {
      const node = parseStatusKey(k);
      return node ? [[node, e] as const] : [];
    }));
    const unselected = opts.nodes === undefined && opts.selector === undefined;
    reports = judgeFleet(selected.map((n) => n.name), statuses, { now: Date.now(), others: unselected, inventory: new Set(inv.nodes.map((n) => n.name)) });
  } finally {
    await nc.close();
  }
  print(opts.json ? JSON.stringify(reports, null, 2) : statusTable(reports, opts.detail ?? false, Date.now()));
  if (opts.check && reports.some(needsAttention)) process.exitCode = 1;
}
