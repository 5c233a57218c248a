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
