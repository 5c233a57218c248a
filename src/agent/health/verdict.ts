/**
 * What the planner knows of health: each workload's verdict, tied to the run it is about (its
 * handle and start time), and the pure rule that turns an `unhealthy` verdict into drift. A verdict
 * of an earlier run (the workload was restarted since) says nothing of the run now, so it is
 * ignored: the restart that cured it never sees the verdict that caused it.
 */
import type { ComponentSpec } from '../../manifest/schema.js';
import type { StoredHealth } from '../../registry/index.js';
import type { Observed } from '../../runtime/types.js';

export const HEALTH_STATUSES = ['starting', 'healthy', 'unhealthy'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export interface HealthVerdict {
  status: HealthStatus;
  /** The last probe's output (why it failed, or what it answered). */
  output: string;
  /** The handle of the run probed (container id, QEMU pid). */
  run: string;
  /** When the status last changed (ISO). */
  since: string;
  /** Failed probes in a row. */
  failures: number;
}

/**
 * The run a verdict is about: its handle. A container started again keeps its id; its verdict is
 * dropped by the monitor when the agent acts on it (hold/release), so a restart starts over.
 * Start times are not used: the runtime's listing and an action's result spell them differently.
 */
export const runOf = (o: Pick<Observed, 'id'>): string => o.id;

/** The verdict about the run observed now, if any. */
export function currentVerdict(health: ReadonlyMap<string, HealthVerdict> | undefined, o: Observed | undefined): HealthVerdict | undefined {
  if (!o || o.state !== 'running') return undefined;
  const v = health?.get(o.name);
  return v && v.run === runOf(o) ? v : undefined;
}

/** The verdicts an agent left in the registry: what `status` and `plan` show without a running agent. */
export function storedVerdicts(instances: ReadonlyArray<{ workload: string; health?: StoredHealth | undefined }>): Map<string, HealthVerdict> {
  const out = new Map<string, HealthVerdict>();
  for (const i of instances) if (i.health) out.set(i.workload, { status: i.health.status, output: i.health.output, run: i.health.run, since: i.health.since, failures: i.health.failures });
  return out;
}

/**
 * A running workload judged unhealthy: the drift's reason (the last probe's output), and whether
 * its restart policy restarts it (always, on-failure: a failed check is a failure; never: reported only).
 */
export function unhealthyDrift(spec: ComponentSpec, v: HealthVerdict | undefined): { reason: string; restart: boolean } | undefined {
  if (!spec.health || v?.status !== 'unhealthy') return undefined;
  const what = `${spec.health.kind} check failed ${v.failures}x`;
  return { reason: `unhealthy: ${what}${v.output ? `: ${v.output}` : ''}`, restart: spec.restart !== 'never' };
}
