/**
 * The pure state machine of one workload's health: probe results in, verdict out. A run starts
 * `starting`; `success_threshold` successes in a row make it `healthy`, `failure_threshold`
 * failures in a row `unhealthy`. Failures during `start_period_seconds` after the run began are
 * not counted (a slow boot), successes are: kubelet's startup semantics. No clock of its own.
 */
import type { HealthCheck } from '../../manifest/health-schema.js';
import type { HealthStatus } from './verdict.js';

export interface TrackState {
  status: HealthStatus;
  failures: number;
  successes: number;
  output: string;
  /** ms since the epoch: when `status` last changed, and when the last probe ended. */
  since: number;
  checkedAt: number | undefined;
}

export const initialState = (now: number): TrackState => ({ status: 'starting', failures: 0, successes: 0, output: '', since: now, checkedAt: undefined });

export interface Step {
  state: TrackState;
  /** The status changed: an event, a registry write, a pass. */
  changed: boolean;
  /** A failure that counted (outside the start period): the failure count moved. */
  counted: boolean;
}

export function afterProbe(s: TrackState, r: { ok: boolean; output: string }, check: HealthCheck, runStartedAt: number, now: number): Step {
  if (r.ok) {
    const successes = s.successes + 1;
    const status: HealthStatus = s.status === 'healthy' || successes >= check.success_threshold ? 'healthy' : s.status;
    return step(s, { ...s, status, successes, failures: 0, output: r.output, checkedAt: now }, now, false);
  }
  if (now < runStartedAt + check.start_period_seconds * 1000) {
    // Within the start period: remembered as the last output, never counted.
    return step(s, { ...s, successes: 0, output: r.output, checkedAt: now }, now, false);
  }
  const failures = s.failures + 1;
  const status: HealthStatus = failures >= check.failure_threshold ? 'unhealthy' : s.status;
  return step(s, { ...s, status, failures, successes: 0, output: r.output, checkedAt: now }, now, true);
}

function step(before: TrackState, after: TrackState, now: number, counted: boolean): Step {
  const changed = before.status !== after.status;
  return { state: changed ? { ...after, since: now } : after, changed, counted };
}
