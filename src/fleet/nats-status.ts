/**
 * `fleet status --nats`: what each node last wrote to `status.<node>`, judged by the master.
 * Pure: the bucket's values and a clock in, one report per node out. A node is `reporting` while
 * its heartbeat (`at`) is at most STALE_AFTER_SECONDS old, `stale` after that (its last summary
 * is still shown), `never-reported` when the inventory names it but it has no key, and
 * `unparsable` when its value is not a NodeSummary (shown as such: one bad value is not a crash).
 */
import { STALE_AFTER_SECONDS, NodeSummarySchema, type NodeSummary } from '../nats/summary.js';
import type { StoredEntry } from './nats-plan.js';
import type { NodeStatus } from './operations.js';

export type NodeState = 'reporting' | 'stale' | 'never-reported' | 'unparsable';

/** The SSH path's NodeStatus fields that a summary carries, plus what only NATS knows. */
export interface NatsNodeStatus extends Omit<NodeStatus, 'agentRunning'> {
  agentId: string;
  version: string;
  heartbeatAt: string;
  /** How many components are not in sync in all (driftedComponents may be capped by the agent). */
  driftedTotal: number;
  appliedRevision: number | null;
  rejected: Array<{ key: string; revision: number; error: string }>;
}

export interface NatsNodeReport {
  node: string;
  /** True only for a reporting node: what --check asks first. */
  ok: boolean;
  state: NodeState;
  /** False for a node that writes status but is not in the inventory. */
  inInventory: boolean;
  /** The key's revision, when there is one. */
  revision?: number;
  error?: string;
  value?: NatsNodeStatus;
}

function toStatus(s: NodeSummary): NatsNodeStatus {
  const inSync = s.counts['in-sync'] ?? 0;
  const drifted = Object.entries(s.counts).reduce((sum, [k, n]) => (k === 'in-sync' ? sum : sum + n), 0);
  return {
    agentId: s.agent_id,
    version: s.version,
    heartbeatAt: s.at,
    lastPassAt: s.last_pass_at,
    inSync,
    drifted,
    runtimes: s.runtimes,
    driftedComponents: s.failing.map((f) => ({ component: f.component, drift: f.drift, reason: f.reason })),
    driftedTotal: Math.max(s.failing_total, drifted),
    appliedRevision: s.source.applied_revision,
    rejected: s.source.rejected,
  };
}

/** One node's report from its key (undefined: no key). */
export function judgeNode(node: string, entry: StoredEntry | undefined, opts: { now: number; inInventory: boolean }): NatsNodeReport {
  const base = { node, inInventory: opts.inInventory };
  if (!entry) return { ...base, ok: false, state: 'never-reported', error: `no status.${node} key: its agent has never reported to this bucket` };
  let doc: unknown;
  try {
    doc = JSON.parse(entry.value);
  } catch {
    return { ...base, ok: false, state: 'unparsable', revision: entry.revision, error: `status.${node} is not JSON (revision ${entry.revision}): ${JSON.stringify(entry.value.slice(0, 60))}` };
  }
  const parsed = NodeSummarySchema.safeParse(doc);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return { ...base, ok: false, state: 'unparsable', revision: entry.revision, error: `status.${node} is not a node summary (revision ${entry.revision}): ${i ? `${i.path.join('.') || '(value)'}: ${i.message}` : ''}` };
  }
  const at = Date.parse(parsed.data.at);
  if (Number.isNaN(at)) return { ...base, ok: false, state: 'unparsable', revision: entry.revision, error: `status.${node}: at must be an ISO time, got '${parsed.data.at}'` };
  const value = toStatus(parsed.data);
  const age = Math.round((opts.now - at) / 1000);
  if (age > STALE_AFTER_SECONDS) {
    return { ...base, ok: false, state: 'stale', revision: entry.revision, value, error: `last heartbeat ${age}s ago (stale after ${STALE_AFTER_SECONDS}s): the agent is down, or cut off from NATS` };
  }
  return { ...base, ok: true, state: 'reporting', revision: entry.revision, value };
}

/**
 * Reports for the selected inventory nodes in inventory order; with `others`, then every other
 * node that has a status key (by name), so a node missing from the inventory is still seen.
 */
export function judgeFleet(selected: string[], statuses: ReadonlyMap<string, StoredEntry>, opts: { now: number; others: boolean; inventory: ReadonlySet<string> }): NatsNodeReport[] {
  const out = selected.map((n) => judgeNode(n, statuses.get(n), { now: opts.now, inInventory: true }));
  if (opts.others) {
    const extra = [...statuses.keys()].filter((n) => !opts.inventory.has(n)).sort();
    for (const n of extra) out.push(judgeNode(n, statuses.get(n), { now: opts.now, inInventory: false }));
  }
  return out;
}

/** What --check fails on: a node not reporting, a drifted component, or a refused key. */
export function needsAttention(r: NatsNodeReport): boolean {
  return !r.ok || (r.value?.drifted ?? 0) > 0 || (r.value?.rejected.length ?? 0) > 0;
}
