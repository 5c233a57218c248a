/**
 * What the agent reports to a metrics backend, and the pure summary of a pass it reports. The agent
 * layer depends on this small interface only; metrics.ts implements it with prom-client. No sink
 * given (one-shot commands) = nothing recorded. Times are seconds, as Prometheus wants them.
 */
import type { RuntimeKind } from '../manifest/schema.js';
import type { Lease, LeaseKind } from '../registry/index.js';
import type { NodeResources } from './admission.js';
import type { ActionType, Assessment, Drift, RuntimeListing } from './planner.js';

/** How an action ended: `interrupted` when the agent was stopping (never started, or rolled back). */
export const ACTION_RESULTS = ['ok', 'failed', 'interrupted'] as const;
export type ActionResult = (typeof ACTION_RESULTS)[number];

/** Every drift and lease kind, so a gauge shows 0 for those absent rather than losing the series. */
export const DRIFTS = ['in-sync', 'missing', 'stopped', 'exited', 'spec-changed', 'network', 'orphan', 'unknown', 'invalid', 'pending', 'drained', 'unhealthy'] as const satisfies readonly Drift[];
export const LEASE_KINDS = ['ip', 'host_port'] as const satisfies readonly LeaseKind[];
export const ACTION_TYPES = ['start', 'restart', 'replace', 'remove', 'adopt', 'stop'] as const satisfies readonly ActionType[];
/** `true` only when the list `L` names every member of the union `T`. */
type Covers<L, T> = [Exclude<T, L>] extends [never] ? true : false;
// A drift or lease kind added to its union without being listed above fails to compile here.
const _lists: [Covers<(typeof DRIFTS)[number], Drift>, Covers<(typeof LEASE_KINDS)[number], LeaseKind>, Covers<(typeof ACTION_TYPES)[number], ActionType>] = [
  true,
  true,
  true,
];

/** The state a pass left, for the gauges. `runtime` is 'none' for a registry row too broken to name one. */
export interface PassReport {
  /** Wall time the pass took: observe, plan, housekeeping and dispatch (not the actions themselves). */
  seconds: number;
  endedAt: Date;
  workloads: Array<{ runtime: RuntimeKind | 'none'; drift: Drift; count: number }>;
  /** Components whose next action waits for a backoff to end. */
  backoff: number;
  /** Per runtime: whether it listed this pass (false: its components are `unknown`). */
  runtimesUp: Partial<Record<RuntimeKind, boolean>>;
  leases: Record<LeaseKind, number>;
  /** The node's capacity and allocation (admission.ts); undefined when MemTotal could not be read. */
  resources?: NodeResources | undefined;
}

export interface MetricsSink {
  /** A reconcile pass ended (passes that threw are not reported). */
  passDone(r: PassReport): void;
  /** An action ended. */
  actionDone(action: ActionType, runtime: RuntimeKind, result: ActionResult): void;
  /** An action was issued `seconds` after the signal that woke the pass which planned it. */
  reacted(seconds: number): void;
  /** A VM answered SSH `seconds` after QEMU was launched. */
  vmBooted(seconds: number): void;
  /** A health probe ended (health/monitor.ts), `seconds` after it began (its wait for a slot not counted). */
  healthChecked?(result: 'success' | 'failure', seconds: number): void;
  /** How many workloads are unhealthy now, after a probe. */
  unhealthyWorkloads?(count: number): void;
}

/** The gauges' view of one pass: counts by runtime and drift, backoffs, runtimes that listed, leases by kind. */
export function passReport(
  p: { assessments: Assessment[]; listings: Partial<Record<RuntimeKind, RuntimeListing>>; leases: Lease[]; resources?: NodeResources | undefined },
  seconds: number,
  endedAt: Date,
): PassReport {
  const counts = new Map<string, { runtime: RuntimeKind | 'none'; drift: Drift; count: number }>();
  for (const a of p.assessments) {
    const runtime = a.runtime ?? 'none';
    const k = `${runtime}\0${a.drift}`;
    const c = counts.get(k) ?? { runtime, drift: a.drift, count: 0 };
    c.count++;
    counts.set(k, c);
  }
  const runtimesUp: Partial<Record<RuntimeKind, boolean>> = {};
  for (const [kind, l] of Object.entries(p.listings) as Array<[RuntimeKind, RuntimeListing | undefined]>) if (l) runtimesUp[kind] = l.ok;
  const leases = Object.fromEntries(LEASE_KINDS.map((k) => [k, 0])) as Record<LeaseKind, number>;
  for (const l of p.leases) leases[l.kind]++;
  return {
    seconds,
    endedAt,
    workloads: [...counts.values()],
    backoff: p.assessments.filter((a) => a.backoffUntil !== undefined).length,
    runtimesUp,
    leases,
    resources: p.resources,
  };
}
