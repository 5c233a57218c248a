/**
 * The planner's drained mode (`agent drain`), pure. While the node is drained, every workload of a
 * desired component is stopped gracefully and kept (action `stop`: a container's logs and a VM's
 * exit record stay), and nothing is started, restarted, replaced or adopted; removals of what no
 * component wants go on. The desired state is never touched. After `agent undrain`, a workload the
 * agent stopped for the drain starts again with a plain `start` (the drain is no failure of the
 * component, so no restart is counted and no backoff grows), whatever its restart policy: a
 * component of `restart = "never"` that the drain stopped runs again, one that had exited on its
 * own before the drain stays as it was.
 */
import { keyString, type ComponentKey } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Observed } from '../runtime/types.js';
import type { Housekeeping } from './housekeeping.js';
import type { Action, Assessment, Drift, PlanInput } from './plan-types.js';

export interface DrainedDecision {
  drift: Drift;
  reason: string;
  action: Action | undefined;
}

/** The reason of a component whose workload is stopped on a drained node (`status` shows it). */
export const STOPPED_DRAINED = 'stopped (drained)';

/** Whether the workload is not running: a drain has nothing left to do to it. */
const isStopped = (o: Observed): boolean => o.state === 'exited' || o.state === 'created';

/** A desired, active component on a drained node: its workload stopped, or a stop of it. */
export function whileDrained(current: Observed | undefined, target: { key: ComponentKey; workload: string; runtime: RuntimeKind }): DrainedDecision {
  if (!current) return { drift: 'drained', reason: 'not started (drained)', action: undefined };
  if (isStopped(current)) return { drift: 'drained', reason: STOPPED_DRAINED, action: undefined };
  if (current.state === 'stopping') return { drift: 'drained', reason: 'stopping (drained)', action: undefined };
  // running, starting (a boot an earlier agent began), paused, unknown: all stopped, gracefully.
  return { drift: 'drained', reason: `${current.state}: to be stopped (drained)`, action: { type: 'stop', ...target, reason: 'node drained' } };
}

/**
 * After an undrain: true when the agent stopped this workload for the drain and it has not run
 * since (its mark is cleared when it starts), so it starts again whatever its restart policy.
 */
export const stoppedByDrain = (current: Observed, marks: ReadonlySet<string> | undefined): boolean => isStopped(current) && (marks?.has(current.name) ?? false);

/**
 * Marks no longer needed on an undrained node: the workload runs again (its stop failed and an
 * agent died before it could say so, or someone started it by hand) or exists nowhere. Left alone
 * while drained, while any runtime cannot list (a workload there cannot be told absent), and for
 * components in flux. Housekeeping: the executor deletes them.
 */
export function staleDrainMarks(input: Pick<PlanInput, 'drained' | 'stoppedByDrain' | 'observed'>, assessments: Assessment[], busy: ReadonlySet<string>): Housekeeping[] {
  const marks = input.stoppedByDrain;
  if (input.drained || !marks || marks.size === 0) return [];
  if (Object.values(input.observed).some((l) => l && !l.ok)) return [];
  const seen = new Map(assessments.filter((a) => a.observed !== 'absent').map((a) => [a.workload, a]));
  const items: Housekeeping[] = [];
  for (const workload of [...marks].sort()) {
    const a = seen.get(workload);
    if (a && busy.has(keyString(a.key))) continue;
    if (!a) items.push({ type: 'forget-drain-mark', key: undefined, workload, reason: 'stopped by a drain, but exists nowhere now' });
    else if (a.observed === 'running') items.push({ type: 'forget-drain-mark', key: a.key, workload, reason: 'stopped by a drain, but runs again' });
  }
  return items;
}
