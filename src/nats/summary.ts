/**
 * What a node tells the fleet in `status.<node>`: small (a master reads thousands), enough to see
 * drift and liveness without asking the node. Written by the agent at each pass that changes it
 * and at least every HEARTBEAT_SECONDS; a master calls a node whose `at` is older than
 * STALE_AFTER_SECONDS `stale`.
 */
import { z } from 'zod';

export const HEARTBEAT_SECONDS = 10;
export const STALE_AFTER_SECONDS = 30;

export const NodeSummarySchema = z.object({
  node: z.string(),
  agent_id: z.string(),
  version: z.string(),
  /** When this summary was written (the heartbeat). */
  at: z.string(),
  last_pass_at: z.string().nullable(),
  /** Components per drift state (`in-sync`, `missing`, …). */
  counts: z.record(z.string(), z.number().int().nonnegative()),
  /** Components not in sync, with why (capped: see `failing_total`). */
  failing: z.array(z.object({ component: z.string(), drift: z.string(), reason: z.string(), last_error: z.string().nullable() })),
  failing_total: z.number().int().nonnegative(),
  runtimes: z.record(z.string(), z.object({ ok: z.boolean(), error: z.string().nullable() })),
  source: z.object({
    /** The last bucket revision applied to the local registry. */
    applied_revision: z.number().int().nonnegative().nullable(),
    /** Keys whose value was refused, with the rule it broke (the registry kept what it had). */
    rejected: z.array(z.object({ key: z.string(), revision: z.number().int(), error: z.string() })),
  }),
  /** What the host offers, when known. */
  capacity: z.object({ cpus: z.number().int().positive(), memory_mib: z.number().int().positive() }).nullable(),
});
export type NodeSummary = z.infer<typeof NodeSummarySchema>;

/** The most failing components listed: a summary stays small whatever the node runs. */
export const FAILING_LISTED = 20;

/** What the summary is made of: the status document's parts it reads (src/agent/status.ts's StatusReport). */
export interface SummaryInput {
  agent: { last_pass_at: string | null };
  runtimes: Partial<Record<string, { ok: boolean; error: string | null }>>;
  summary: Record<string, number>;
  components: Array<{ service: string; component: string; drift: string; reason: string; last_error: string | null }>;
}

/** The node's summary from its status document; pure (`at` and the rest are given). */
export function nodeSummary(
  report: SummaryInput,
  x: { node: string; agentId: string; version: string; at: Date; appliedRevision: number | null; rejected: NodeSummary['source']['rejected']; capacity: NodeSummary['capacity'] },
): NodeSummary {
  const failing = report.components.filter((c) => c.drift !== 'in-sync');
  const runtimes: NodeSummary['runtimes'] = {};
  for (const [k, v] of Object.entries(report.runtimes)) if (v) runtimes[k] = { ok: v.ok, error: v.error };
  return {
    node: x.node,
    agent_id: x.agentId,
    version: x.version,
    at: x.at.toISOString(),
    last_pass_at: report.agent.last_pass_at,
    counts: { ...report.summary },
    failing: failing.slice(0, FAILING_LISTED).map((c) => ({ component: `${c.service}/${c.component}`, drift: c.drift, reason: c.reason, last_error: c.last_error })),
    failing_total: failing.length,
    runtimes,
    source: { applied_revision: x.appliedRevision, rejected: x.rejected },
    capacity: x.capacity,
  };
}

/** Whether two summaries say the same (their heartbeat and pass times aside): a change is published at once. */
export function sameSummary(a: NodeSummary, b: NodeSummary): boolean {
  const strip = (s: NodeSummary): string => JSON.stringify({ ...s, at: '', last_pass_at: '' });
  return strip(a) === strip(b);
}
