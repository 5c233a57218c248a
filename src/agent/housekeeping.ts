/**
 * The housekeeping of a pass, as data: what the registry and the host need besides the actions
 * (failure counts to reset, leases to give back or take back, records to forget, garbage to
 * collect, isolation rules to load again). Pure: the planner decides it from what it was given,
 * the executor (housekeeper.ts) is the one place that performs it and writes it to the events log.
 * Invariant: nothing of a component in flux (`busy`) is touched, and nothing that depends on
 * knowing what runs is decided while a runtime could not list.
 */
import { keyString, type ComponentKey } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { InstanceRecord, Lease } from '../registry/index.js';
import { mustHoldLease } from './lease-check.js';
import { isolationDue, type BridgeFact } from './network-drift.js';
import type { Assessment, RuntimeListing } from './planner.js';
import { staleInstances } from './stale-instances.js';

export type Housekeeping =
  /** Running this long in sync: its failure count (and so its backoff) starts from zero again. */
  | { type: 'reset-failures'; key: ComponentKey; workload: string; reason: string }
  /** A bridge VM that runs holds no lease on its address (the row was lost): take it back. */
  | { type: 'retake-lease'; key: ComponentKey; workload: string; address: string; reason: string }
  /** A bridge VM runs on an address leased to another component: reported, never changed. */
  | { type: 'lease-conflict'; key: ComponentKey; workload: string; address: string; leasedTo: string }
  /** A lease of a component neither desired nor running anywhere (an agent that crashed mid-start). */
  | { type: 'release-lease'; lease: Lease; reason: string }
  /** A record of a workload that exists nowhere and that no component wants. */
  | { type: 'forget-instance'; key: ComponentKey; workload: string; reason: string }
  /** The runtime was listed in full this pass: it may free what no workload owns (TAPs without a VM). */
  | { type: 'collect-garbage'; runtime: RuntimeKind; reason: string }
  /** The bridge is there without its isolation rules (a firewall reload flushed them): load them again. */
  | { type: 'isolate'; bridge: string; reason: string }
  /** A drain's mark on a workload that runs again or exists nowhere, on an undrained node (drain-plan.ts). */
  | { type: 'forget-drain-mark'; key: ComponentKey | undefined; workload: string; reason: string };

export interface HousekeepingInput {
  assessments: Assessment[];
  /** Workloads stable and in sync with failures counted (decided by the planner's core). */
  settled: Array<{ key: ComponentKey; workload: string }>;
  listings: Partial<Record<RuntimeKind, RuntimeListing>>;
  instances: InstanceRecord[];
  /** The lease table; without it no lease is collected (status and plan do not pass it). */
  leases: Lease[] | undefined;
  /** Components (`service/component`, or `workload:<name>`) in flux: left alone this pass. */
  busy: ReadonlySet<string>;
  /** Runtimes listed in full this pass (start, resync): not those read from the live view. */
  listedInFull: RuntimeKind[];
  bridge: BridgeFact | undefined;
}

export function planHousekeeping(input: HousekeepingInput): Housekeeping[] {
  const { busy } = input;
  const items: Housekeeping[] = input.settled
    .filter((s) => !busy.has(keyString(s.key)))
    .map((s) => ({ type: 'reset-failures', ...s, reason: 'running and in sync for stable_after_seconds' }));
  if (input.leases) items.push(...leaseItems(input.assessments, input.leases, input.listings, busy));
  const stale = staleInstances({ instances: input.instances, listings: input.listings, assessments: input.assessments, busy });
  const byName = new Map(input.instances.map((i) => [i.workload, i]));
  for (const workload of stale) {
    const i = byName.get(workload)!;
    items.push({ type: 'forget-instance', key: { service: i.service, component: i.component }, workload, reason: 'exists nowhere and no component wants it' });
  }
  if (isolationDue(input.bridge)) items.push({ type: 'isolate', bridge: input.bridge!.name, reason: 'the isolation rules of the VM bridge were missing or changed' });
  for (const runtime of input.listedInFull) items.push({ type: 'collect-garbage', runtime, reason: `the ${runtime} runtime was listed in full` });
  return items;
}

/**
 * No VM without a lease: a bridge VM that runs holds its IP in the registry, whatever happened to
 * the row (so the address is never handed to a second VM). Leases of components that are neither
 * desired nor running anywhere are given back. Nothing when a runtime could not list.
 */
function leaseItems(assessments: Assessment[], leases: Lease[], listings: HousekeepingInput['listings'], busy: ReadonlySet<string>): Housekeeping[] {
  if (Object.values(listings).some((l) => l && !l.ok)) return [];
  const items: Housekeeping[] = [];
  const ipOwner = new Map(leases.filter((l) => l.kind === 'ip').map((l) => [l.value, l]));
  for (const a of assessments) {
    if (!mustHoldLease(a, busy)) continue;
    const owner = ipOwner.get(a.address);
    if (!owner) items.push({ type: 'retake-lease', key: a.key, workload: a.workload, address: a.address, reason: 'a running VM holds no lease on its address' });
    else if (owner.service !== a.key.service || owner.component !== a.key.component) {
      items.push({ type: 'lease-conflict', key: a.key, workload: a.workload, address: a.address, leasedTo: `${owner.service}/${owner.component}` });
    }
  }
  const keep = new Set(assessments.filter((a) => a.desired === 'running' || a.observed !== 'absent').map((a) => keyString(a.key)));
  for (const lease of leases) {
    const k = `${lease.service}/${lease.component}`;
    if (!keep.has(k) && !busy.has(k)) items.push({ type: 'release-lease', lease, reason: 'its component is neither desired nor running' });
  }
  return items;
}
