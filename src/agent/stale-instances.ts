/**
 * Which `instances` rows no longer stand for anything: no workload of that name in any runtime,
 * and no component that wants it. Such rows (a failed start's backoff, a workload removed by a
 * child process that outlived a killed agent) would otherwise stay forever, since no action ever
 * concerns them again. Pure: decided only when every runtime listed; a runtime that could not
 * list may still run the workload, so then nothing is stale.
 */
import { keyString } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { InstanceRecord } from '../registry/index.js';
import type { Assessment, RuntimeListing } from './planner.js';

export interface StaleInput {
  instances: InstanceRecord[];
  listings: Partial<Record<RuntimeKind, RuntimeListing>>;
  assessments: Assessment[];
  /** Components (`service/component`) with an action under way: their rows are in flux. */
  busy: ReadonlySet<string>;
}

/** The workload names of rows to forget. */
export function staleInstances(input: StaleInput): string[] {
  const listings = Object.values(input.listings);
  if (listings.length === 0 || listings.some((l) => !l?.ok)) return [];
  const running = new Set(listings.flatMap((l) => (l?.ok ? l.items.map((o) => o.name) : [])));
  // Wanted: desired to run, or a row the agent cannot read (never acted on, never collected).
  const wanted = new Set(input.assessments.filter((a) => a.desired === 'running' || a.drift === 'invalid' || a.drift === 'unknown').map((a) => a.workload));
  return input.instances
    .filter((i) => !running.has(i.workload) && !wanted.has(i.workload) && !input.busy.has(keyString(i)))
    .map((i) => i.workload);
}
