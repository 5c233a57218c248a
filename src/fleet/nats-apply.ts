/**
 * `fleet apply --nats`: writes each node's planned key operations (src/fleet/nats-plan.ts) to the
 * bucket, every write conditional on the revision it was planned against (create: no live key;
 * update and delete: that revision). A key someone else changed meanwhile is refused by the
 * server: that key fails, naming both revisions, and every other key and node goes on.
 */
import type { KV } from 'nats';
import { parseDesiredKey } from '../nats/keys.js';
import { readKeys } from './nats-client.js';
import { groupByNode, planNodeKeys, type NodeKeyPlan, type StoredEntry } from './nats-plan.js';
import { eachNode } from './pool.js';

export interface KeyFailure {
  key: string;
  kind: 'conflict' | 'error';
  error: string;
}

/** One node's outcome; `failed` lists the keys that were not written (the others were). */
export interface NatsApplyResult {
  node: string;
  ok: boolean;
  dry_run: boolean;
  created: string[];
  updated: Array<{ name: string; changes: string[] }>;
  unchanged: string[];
  pruned: string[];
  failed: KeyFailure[];
  /** Set when the node was refused as a whole (an empty set without --allow-empty). */
  refused?: string;
  /** Each written key's new revision (the agent reports the last it applied in status.<node>). */
  revisions: Record<string, number>;
}

/** The live `desired.*` keys of these nodes, by node then service (one read for all of them). */
export async function readDesired(kv: KV, nodes: string[], timeoutMs: number): Promise<Map<string, Map<string, StoredEntry>>> {
  const filter = nodes.length === 1 ? `desired.${nodes[0]}.>` : 'desired.>';
  return groupByNode(await readKeys(kv, filter, timeoutMs), parseDesiredKey);
}

/** The server's "wrong last sequence" answer to a conditional write. */
function isConflict(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e.api_error?.err_code === 10071 || /wrong last sequence/i.test(e.message ?? '');
}

/** What the key holds now, for the conflict message. */
async function nowAt(kv: KV, key: string): Promise<string> {
  try {
    const e = await kv.get(key);
    if (!e) return 'no key';
    return e.operation === 'PUT' ? `revision ${e.revision}` : `revision ${e.revision} (${e.operation === 'DEL' ? 'deleted' : 'purged'})`;
  } catch {
    return 'an unknown revision';
  }
}

async function failure(kv: KV, key: string, expected: string, err: unknown): Promise<KeyFailure> {
  if (isConflict(err)) {
    return { key, kind: 'conflict', error: `${key} was changed by another writer since it was read (expected ${expected}, found ${await nowAt(kv, key)}): nothing written to it; re-run to apply over it` };
  }
  return { key, kind: 'error', error: `${key}: ${(err as Error).message}` };
}

/**
 * Writes one node's plan; never throws for a key, a failed key is recorded and the next goes on.
 * `kv` is undefined only for a dry run against a bucket that does not exist yet.
 */
export async function executePlan(kv: KV | undefined, plan: NodeKeyPlan, dryRun: boolean): Promise<NatsApplyResult> {
  const write = !dryRun && kv ? kv : undefined;
  const r: NatsApplyResult = { node: plan.node, ok: true, dry_run: dryRun, created: [], updated: [], unchanged: [], pruned: [], failed: [], revisions: {} };
  if (plan.refused) return { ...r, ok: false, refused: plan.refused };
  for (const op of plan.ops) {
    if (op.op === 'unchanged') {
      r.unchanged.push(op.service);
      continue;
    }
    try {
      if (op.op === 'create') {
        if (write) r.revisions[op.key] = await write.create(op.key, op.value);
        r.created.push(op.service);
      } else if (op.op === 'update') {
        if (write) r.revisions[op.key] = await write.update(op.key, op.value, op.revision);
        r.updated.push({ name: op.service, changes: op.changes });
      } else {
        if (write) await write.delete(op.key, { previousSeq: op.revision });
        r.pruned.push(op.service);
      }
    } catch (err) {
      r.failed.push(await failure(write!, op.key, op.op === 'create' ? 'no key' : `revision ${op.revision}`, err));
    }
  }
  r.ok = r.failed.length === 0;
  return r;
}

/** Plans and writes every node's set, `parallel` nodes at a time; results in the nodes' order. */
export async function fleetApplyNats(
  kv: KV | undefined,
  nodes: string[],
  wanted: (node: string) => Array<{ name: string; manifest: Record<string, unknown> }>,
  opts: { timeoutMs: number; parallel: number; dryRun: boolean; allowEmpty: boolean },
): Promise<NatsApplyResult[]> {
  // A dry run against a bucket that does not exist yet: every key would be created.
  const current = kv ? await readDesired(kv, nodes, opts.timeoutMs) : new Map<string, Map<string, StoredEntry>>();
  const plans = nodes.map((n) => planNodeKeys(n, wanted(n), current.get(n) ?? new Map(), { allowEmpty: opts.allowEmpty }));
  const settled = await eachNode(plans, opts.parallel, (p) => executePlan(kv, p, opts.dryRun));
  return settled.map((s, i) =>
    s.ok ? s.value : { node: nodes[i]!, ok: false, dry_run: opts.dryRun, created: [], updated: [], unchanged: [], pruned: [], failed: [{ key: `desired.${nodes[i]}.>`, kind: 'error', error: s.error.message }], revisions: {} },
  );
}
