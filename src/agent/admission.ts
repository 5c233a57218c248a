/**
 * Host resource admission, pure: what the node holds (capacity), what this agent's workloads hold
 * (allocated), and which of a pass's starts fit. A start, restart or replace that does not fit is
 * not taken: its component is `pending` with a `does not fit: …` reason until room frees up (a
 * removal or an exit wakes the loop, and the next pass admits it).
 *
 * Invariants:
 * - Nothing admitted makes the allocation exceed the capacity, in memory or in vCPUs.
 * - The order is stable (service, then component name; plain code-unit order, not the locale's):
 *   given the same node, the same components win every time. Each is tried in turn (first fit): a
 *   small component after a large one that does not fit may still start.
 * - What is running or being started holds its share until it is gone: a removal frees room only
 *   once it is done; a replace counts the old workload's share as freed for its own new one.
 */
import { keyString } from '../errors.js';
import type { ComponentSpec, RuntimeKind } from '../manifest/schema.js';
import type { DesiredState, InstanceRecord } from '../registry/index.js';
import type { WorkloadState } from '../runtime/types.js';
import type { Action, Assessment, PlanInput, RuntimeListing } from './plan-types.js';

/** The node's settings that shape admission (config.ts: host.*, qemu.overhead_mib). */
export interface AdmissionSettings {
  reservedMemoryMib: number;
  cpuOvercommit: number;
  /** What a container without `memory` counts (0: not counted). */
  defaultContainerMemoryMib: number;
  /** What QEMU itself holds per VM, besides the guest's memory. */
  qemuOverheadMib: number;
}

/** What the host has, as read by capacity.ts. */
export interface HostCapacity {
  memTotalMib: number;
  onlineCpus: number;
}

export interface AdmissionInput {
  host: HostCapacity;
  settings: AdmissionSettings;
}

export interface Share {
  memoryMib: number;
  vcpus: number;
}

/** The node's capacity and allocation, as `status` and the metrics show them. */
export interface NodeResources {
  memory: { total_mib: number; reserved_mib: number; capacity_mib: number; allocated_mib: number };
  vcpus: { online_cpus: number; overcommit: number; capacity: number; allocated: number };
}

/** A start-like action that does not fit this pass. */
export interface NotAdmitted {
  action: Action;
  /** `does not fit: needs 16064 MiB, 7040 MiB free of 23593 (reserved 512)`. */
  reason: string;
}

/** The guest memory QEMU is given when a VM spec names none (runtime/qemu/launch.ts). */
const VM_DEFAULT_MEMORY_MIB = 128;
/** Workload states that hold the host's memory and CPUs (an exited or created one holds none). */
const HOLDING: ReadonlySet<WorkloadState> = new Set(['running', 'starting', 'paused', 'stopping', 'unknown']);

type Sizing = { runtime: RuntimeKind | string; memory?: unknown; vcpus?: unknown };
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * What one workload holds: a VM its memory plus QEMU's overhead and its vCPUs (1 when unset, as
 * QEMU runs it); a container its memory limit (or the default) and its `--cpus` (0 when unset:
 * unlimited containers are not counted against the vCPU capacity).
 */
export function shareOf(spec: Sizing, s: AdmissionSettings): Share {
  const memory = num(spec.memory);
  const vcpus = num(spec.vcpus);
  if (spec.runtime === 'unikernel') return { memoryMib: (memory ?? VM_DEFAULT_MEMORY_MIB) + s.qemuOverheadMib, vcpus: vcpus ?? 1 };
  return { memoryMib: memory ?? s.defaultContainerMemoryMib, vcpus: vcpus ?? 0 };
}

export function capacityOf(a: AdmissionInput): Share {
  return { memoryMib: Math.max(0, a.host.memTotalMib - a.settings.reservedMemoryMib), vcpus: a.host.onlineCpus * a.settings.cpuOvercommit };
}

const isStartLike = (a: Action | undefined): a is Extract<Action, { spec: ComponentSpec }> => a !== undefined && (a.type === 'start' || a.type === 'restart' || a.type === 'replace');

export interface AdmitInput {
  admission: AdmissionInput;
  /** The pass's assessments (each with the action it would take). */
  assessments: Assessment[];
  observed: Partial<Record<RuntimeKind, RuntimeListing>>;
  instances: InstanceRecord[];
  /** What the registry wants: its specs are the best guess of what an unrecorded workload holds. */
  desired: DesiredState;
  /** Components with an action under way: a start under way holds its share already. */
  busy: ReadonlySet<string>;
}

/**
 * What the workloads of this agent hold now: each one the runtimes list in a holding state, sized
 * by the spec it was started from (the agent's record when its hash matches, else the desired
 * spec); for a runtime that cannot list, the agent's records of it (what it last started there);
 * and each component whose start is under way but not yet listed.
 */
export function holdings(i: AdmitInput): Map<string, Share> {
  const { settings } = i.admission;
  const records = new Map(i.instances.map((r) => [r.workload, r]));
  const desiredSpecs = new Map<string, ComponentSpec>(i.desired.components.flatMap((c) => (c.valid ? [[`${c.service}/${c.component}`, c.spec] as const] : [])));
  const held = new Map<string, Share>();
  const sizeOf = (workload: string, runtime: RuntimeKind, key: string | undefined, hash: string | undefined): Share => {
    const rec = records.get(workload);
    if (rec?.spec && (hash === undefined || rec.specHash === hash)) return shareOf({ ...rec.spec, runtime }, settings);
    const want = key ? desiredSpecs.get(key) : undefined;
    return shareOf(want?.runtime === runtime ? want : { runtime }, settings);
  };
  for (const [kind, listing] of Object.entries(i.observed) as Array<[RuntimeKind, RuntimeListing | undefined]>) {
    if (!listing) continue;
    if (listing.ok) {
      for (const o of listing.items) {
        if (HOLDING.has(o.state)) held.set(`${kind}:${o.name}`, sizeOf(o.name, kind, o.key ? keyString(o.key) : undefined, o.specHash));
      }
    } else {
      for (const r of i.instances) if (r.runtime === kind && r.handle) held.set(`${kind}:${r.workload}`, sizeOf(r.workload, kind, undefined, undefined));
    }
  }
  for (const a of i.assessments) {
    const act = a.action;
    if (isStartLike(act) && i.busy.has(keyString(act.key)) && !held.has(`${act.runtime}:${act.workload}`)) held.set(`${act.runtime}:${act.workload}`, shareOf(act.spec, settings));
  }
  return held;
}

const sum = (shares: Iterable<Share>): Share => {
  const t = { memoryMib: 0, vcpus: 0 };
  for (const s of shares) (t.memoryMib += s.memoryMib), (t.vcpus += s.vcpus);
  return t;
};

/** `a/b` before `a-b/a`: service first, then component, by code units (stable across locales). */
const byKey = (x: Action, y: Action): number => {
  const [a, b] = [x.key!, y.key!];
  return a.service < b.service ? -1 : a.service > b.service ? 1 : a.component < b.component ? -1 : a.component > b.component ? 1 : 0;
};

function doesNotFit(need: Share, free: Share, cap: Share, a: AdmissionInput): string | undefined {
  if (need.memoryMib > free.memoryMib) {
    return `does not fit: needs ${need.memoryMib} MiB, ${Math.max(0, free.memoryMib)} MiB free of ${cap.memoryMib} (reserved ${a.settings.reservedMemoryMib})`;
  }
  if (need.vcpus > free.vcpus) {
    const cpus = `${a.host.onlineCpus} CPU${a.host.onlineCpus === 1 ? '' : 's'} × overcommit ${a.settings.cpuOvercommit}`;
    return `does not fit: needs ${need.vcpus} vCPU${need.vcpus === 1 ? '' : 's'}, ${Math.max(0, free.vcpus)} free of ${cap.vcpus} (${cpus})`;
  }
  return undefined;
}

/**
 * Which start-like actions of idle components fit, tried in (service, component) order, each
 * admitted one holding its share for those after it. Returns those that do not fit, and the node's
 * resources with the admitted ones counted as allocated (what the node holds once they run).
 */
export function admitStarts(i: AdmitInput): { notAdmitted: NotAdmitted[]; resources: NodeResources } {
  const { admission } = i;
  const cap = capacityOf(admission);
  const held = holdings(i);
  const notAdmitted: NotAdmitted[] = [];
  const candidates = i.assessments.flatMap((a) => (isStartLike(a.action) && !i.busy.has(keyString(a.action.key)) ? [a.action] : [])).sort(byKey);
  for (const act of candidates) {
    const slot = `${act.runtime}:${act.workload}`;
    // A replace (or a restart of a workload still listed) gives its old share back for the new one.
    const old = held.get(slot);
    held.delete(slot);
    const used = sum(held.values());
    const need = shareOf(act.spec, admission.settings);
    const reason = doesNotFit(need, { memoryMib: cap.memoryMib - used.memoryMib, vcpus: cap.vcpus - used.vcpus }, cap, admission);
    if (reason) {
      notAdmitted.push({ action: act, reason });
      if (old) held.set(slot, old);
    } else {
      held.set(slot, need);
    }
  }
  const allocated = sum(held.values());
  return {
    notAdmitted,
    resources: {
      memory: { total_mib: admission.host.memTotalMib, reserved_mib: admission.settings.reservedMemoryMib, capacity_mib: cap.memoryMib, allocated_mib: allocated.memoryMib },
      vcpus: { online_cpus: admission.host.onlineCpus, overcommit: admission.settings.cpuOvercommit, capacity: cap.vcpus, allocated: allocated.vcpus },
    },
  };
}

/**
 * The planner's hook (plan() calls it once its assessments are made): admits the pass's starts when
 * the input carries the host's capacity, and turns each component that does not fit into `pending`
 * with the reason and no action. Undefined when there is no capacity to admit against.
 */
export function admitPlanned(input: PlanInput, assessments: Assessment[], busy: ReadonlySet<string>): { notAdmitted: NotAdmitted[]; resources: NodeResources } | undefined {
  if (!input.admission) return undefined;
  const r = admitStarts({ admission: input.admission, assessments, observed: input.observed, instances: input.instances, desired: input.desired, busy });
  const refused = new Map(r.notAdmitted.map((n) => [n.action, n.reason]));
  for (const a of assessments) {
    const reason = a.action && refused.get(a.action);
    if (!reason) continue;
    a.drift = 'pending';
    a.reason = reason;
    a.action = undefined;
  }
  return r;
}
