/**
 * The planner: a pure function from (desired, observed, agent records, the bridge, what is in
 * flux, now) to a per-component assessment (what drifted and why), the actions that would repair
 * it (each VM start with the network it goes on), and the pass's housekeeping (housekeeping.ts).
 * Level-triggered: it looks only at the state now, never at what happened, so running it twice
 * plans the same thing. `agent status` shows the assessments; `agent plan` the actions; `agent
 * run` executes actions and housekeeping (executor.ts).
 */
import { keyString, type ComponentKey } from '../errors.js';
import type { ComponentSpec, RuntimeKind } from '../manifest/schema.js';
import type { DesiredState, InstanceRecord, Lease } from '../registry/index.js';
import type { Observed } from '../runtime/types.js';
import { attemptHash, SHAPING_FIELDS, specHash, workloadName } from '../identity.js';
import { specChanges } from '../manifest/diff.js';
import { planHousekeeping, type Housekeeping } from './housekeeping.js';
import { networkDrift, vmNetwork, type BridgeFact, type NetworkDrift, type VmNetwork } from './network-drift.js';

export type Drift =
  | 'in-sync' // matches the registry
  | 'missing' // desired running, not there
  | 'stopped' // there, not running, and the restart policy wants it running
  | 'exited' // there, not running, and the restart policy says leave it
  | 'spec-changed' // running from another spec
  | 'network' // a VM running, but not on the network its spec asks for now (see network-drift.ts)
  | 'orphan' // ours, but no (active) component wants it
  | 'unknown' // its runtime could not list: never treated as missing
  | 'invalid' // the registry row is not a valid component
  | 'pending'; // in a transitional state (stopping, paused...)

/** What starts a workload; a VM's carries the network it goes on (decided here, leased by placement). */
interface StartLike { key: ComponentKey; workload: string; runtime: RuntimeKind; spec: ComponentSpec; specHash: string; network?: VmNetwork | undefined; reason: string }

/** What the reconcile would do. Reasons are for humans and land in the events log. */
export type Action =
  | ({ type: 'start' } & StartLike)
  | ({ type: 'restart' } & StartLike)
  | ({ type: 'replace' } & StartLike)
  | { type: 'remove'; key: ComponentKey | undefined; workload: string; runtime: RuntimeKind; reason: string }
  | {
      type: 'adopt';
      key: ComponentKey;
      workload: string;
      runtime: RuntimeKind;
      handle: string;
      specHash: string;
      /** The desired spec, whose hash the workload carries: recorded as the spec it runs. */
      startedFrom: ComponentSpec;
      startedAt: string | undefined;
      reason: string;
    };

export type ActionType = Action['type'];

export interface Assessment {
  key: ComponentKey;
  workload: string;
  runtime: RuntimeKind | undefined;
  desired: 'running' | 'absent';
  /** The observed state, 'absent', or 'unknown' when the runtime could not list. */
  observed: string;
  drift: Drift;
  reason: string;
  action: Action | undefined;
  /** Set when an action is due but held back by the backoff. */
  backoffUntil: string | undefined;
  /**
   * The last failure of this component's current spec while it is not in sync (a failed start, an
   * exit the agent restarted): kept after its backoff ends, so an operator still sees why.
   */
  lastError: string | undefined;
  /** When the observed workload started, as its runtime says. */
  startedAt: string | undefined;
  address: string | undefined;
  network: string | undefined;
  handle: string | undefined;
}

export type RuntimeListing = { ok: true; items: Observed[] } | { ok: false; error: string };

export interface PlanInput {
  desired: DesiredState;
  observed: Partial<Record<RuntimeKind, RuntimeListing>>;
  instances: InstanceRecord[];
  now: Date;
  /** A workload running this long in sync has its failure count reset. */
  stableAfterMs: number;
  /** The VM bridge as this pass saw it; without it, VM networks are not checked and no VM goes on it. */
  bridge?: BridgeFact | undefined;
  /** Components in flux (see `unitOf`): assessed, but no action or housekeeping of theirs this pass. */
  busy?: ReadonlySet<string>;
  /** The lease table, for lease collection; without it none is planned. */
  leases?: Lease[];
  /** Runtimes listed in full this pass: their garbage may be collected. */
  listedInFull?: RuntimeKind[];
}

/** An action that is due but waits for its component's backoff to end. */
export interface HeldAction {
  action: Action;
  /** When the backoff ends: the next pass after it takes the action. */
  until: string;
  failures: number;
  lastError: string | undefined;
}

/** A runtime that could not list this pass: its components are `unknown`, and nothing is done to them. */
export interface UnknownRuntime {
  runtime: RuntimeKind;
  error: string;
  /** The registry's components on it (sorted `service/component`); may be empty. */
  components: string[];
}

export interface PlanResult {
  assessments: Assessment[];
  /** The actions of components not in flux. */
  actions: Action[];
  /** Actions held back by a backoff (not in `actions`), in assessment order. */
  held: HeldAction[];
  /** Runtimes that could not list, or that components need and are not configured. */
  unknown: UnknownRuntime[];
  /** What the registry and the host need besides the actions, in the order it is done. */
  housekeeping: Housekeeping[];
  /**
   * The earliest time after `now` at which planning again could decide something new without
   * anything else changing: a backoff ending, or a workload becoming stable (its failures reset).
   * Undefined when nothing is due. The loop sets one timer for it (controller-runtime's RequeueAfter).
   * A boot deadline is not among them: a booting VM is a start under way in the executor, bounded
   * by the runtime's boot timeout, and the end of that action wakes the loop.
   */
  requeueAt: Date | undefined;
}

const RUNTIME_ORDER: RuntimeKind[] = ['container', 'unikernel'];

/** The serialisation unit of an action: its component, or for unlabelled orphans, the workload itself. */
export const unitOf = (a: Action): string => (a.key ? keyString(a.key) : `workload:${a.workload}`);

function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Whether a stopped workload should run again under its restart policy. */
function wantsRestart(spec: ComponentSpec, o: Observed): boolean {
  if (o.state === 'created') return true;
  if (spec.restart === 'always') return true;
  if (spec.restart === 'on-failure') return o.exitCode !== 0;
  return false;
}

function describeExit(o: Observed): string {
  if (o.state === 'created') return 'created but never started';
  if (o.runtime === 'unikernel') return `VM not running: ${o.exitReason ?? 'QEMU exited'}`;
  return `exited (code ${o.exitCode ?? '?'})`;
}

/**
 * `spec changed: memory 64 → 96, env.FOO added`: the shaping fields that differ from the spec the
 * running workload was started from, when the agent's record holds that spec (the record's hash is
 * the workload's label). Otherwise (started before the registry kept specs, or by another agent)
 * only the two hashes can be told apart.
 */
function specChangedReason(spec: ComponentSpec, current: Observed, rec: InstanceRecord | undefined, hash: string): string {
  const before = rec?.spec && rec.specHash === current.specHash ? rec.spec : undefined;
  const changes = before ? specChanges(before, spec, SHAPING_FIELDS) : [];
  if (changes.length > 0) return `spec changed: ${changes.join(', ')}`;
  return `spec changed (running ${current.specHash?.slice(0, 12) ?? 'unlabelled'}, desired ${hash.slice(0, 12)})`;
}

export function plan(input: PlanInput): PlanResult {
  const { desired, observed, now } = input;
  const assessments: Assessment[] = [];
  const settled: Array<{ key: ComponentKey; workload: string }> = [];
  /** Epoch ms of the earliest thing that becomes due after `now` (see PlanResult.requeueAt). */
  let due = Infinity;
  const dueAt = (ms: number): void => {
    if (ms > now.getTime() && ms < due) due = ms;
  };
  const instances = new Map(input.instances.map((i) => [i.workload, i]));
  const activeServices = new Map(desired.services.map((s) => [s.name, s.active]));

  // Observed workloads by component key, per runtime. Claimed ones are removed as we go;
  // whatever is left at the end is an orphan.
  const unclaimed = new Map<string, Observed[]>();
  for (const rt of RUNTIME_ORDER) {
    const listing = observed[rt];
    if (!listing?.ok) continue;
    for (const o of listing.items) {
      const k = o.key ? keyString(o.key) : `?${o.name}`;
      const list = unclaimed.get(k) ?? [];
      list.push(o);
      unclaimed.set(k, list);
    }
  }

  /** Desired keys whose observed workloads must not be called orphans (invalid row, unknown runtime). */
  const protectedKeys = new Set<string>();
  const held: HeldAction[] = [];
  const unknown = new Map<RuntimeKind, UnknownRuntime>();
  for (const rt of RUNTIME_ORDER) {
    const listing = observed[rt];
    if (listing && !listing.ok) unknown.set(rt, { runtime: rt, error: listing.error, components: [] });
  }

  for (const dc of desired.components) {
    const key: ComponentKey = { service: dc.service, component: dc.component };
    const ks = keyString(key);
    const workload = workloadName(key);
    const base = { key, workload, backoffUntil: undefined, lastError: undefined, startedAt: undefined, address: undefined, network: undefined, handle: undefined };

    if (!dc.valid) {
      protectedKeys.add(ks);
      const o = unclaimed.get(ks)?.[0];
      assessments.push({ ...base, runtime: o?.runtime, desired: activeServices.get(dc.service) ? 'running' : 'absent', observed: o?.state ?? 'absent', drift: 'invalid', reason: `registry row is invalid: ${dc.error}`, action: undefined, handle: o?.id });
      continue;
    }
    const spec = dc.spec;
    const hash = specHash(spec);
    const listing = observed[spec.runtime];
    // A component row without its service row (a master deleted the service with foreign keys
    // off) wants nothing running, like an inactive service.
    const active = activeServices.get(dc.service) ?? false;
    const absentWhy = activeServices.has(dc.service) ? 'service is inactive' : 'its service row is missing';

    if (!listing || !listing.ok) {
      protectedKeys.add(ks);
      const why = listing ? listing.error : `no ${spec.runtime} runtime is configured`;
      const u = unknown.get(spec.runtime) ?? { runtime: spec.runtime, error: why, components: [] };
      u.components.push(ks);
      unknown.set(spec.runtime, u);
      assessments.push({ ...base, runtime: spec.runtime, desired: active ? 'running' : 'absent', observed: 'unknown', drift: 'unknown', reason: `${spec.runtime} runtime cannot list workloads: ${why}`, action: undefined });
      continue;
    }

    // This component's workloads across all runtimes: the one of its runtime and name is the
    // instance; any other (other runtime, other name) is extra and goes.
    const mine = unclaimed.get(ks) ?? [];
    unclaimed.delete(ks);
    const current = mine.find((o) => o.runtime === spec.runtime && o.name === workload);
    for (const extra of mine) {
      if (extra === current) continue;
      const why = extra.runtime !== spec.runtime ? `runtime changed to ${spec.runtime}` : `duplicate of ${workload}`;
      assessments.push({ ...base, workload: extra.name, runtime: extra.runtime, desired: 'absent', observed: extra.state, drift: 'orphan', reason: why, handle: extra.id, action: { type: 'remove', key, workload: extra.name, runtime: extra.runtime, reason: why } });
    }

    const rec = instances.get(workload);
    const common = { ...base, runtime: spec.runtime, address: current?.address, network: current?.network, handle: current?.id, startedAt: current?.startedAt };

    if (!active) {
      if (current) {
        const reason = absentWhy;
        assessments.push({ ...common, desired: 'absent', observed: current.state, drift: 'orphan', reason, action: { type: 'remove', key, workload, runtime: spec.runtime, reason } });
      } else {
        assessments.push({ ...common, desired: 'absent', observed: 'absent', drift: 'in-sync', reason: absentWhy, action: undefined });
      }
      continue;
    }

    let drift: Drift;
    let reason: string;
    let action: Action | undefined;
    let netDrift: NetworkDrift | undefined;
    const network = spec.runtime === 'unikernel' ? vmNetwork(spec, input.bridge) : undefined;
    const startLike = { key, workload, runtime: spec.runtime, spec, specHash: hash, ...(network ? { network } : {}) };
    if (!current) {
      drift = 'missing';
      reason = 'not running (missing)';
      action = { type: 'start', ...startLike, reason: 'missing' };
    } else if (current.specHash !== hash) {
      drift = 'spec-changed';
      reason = specChangedReason(spec, current, rec, hash);
      action = { type: 'replace', ...startLike, reason };
    } else if (current.state === 'running' && (netDrift = networkDrift(spec, current, input.bridge))) {
      drift = 'network';
      reason = netDrift.reason;
      action = netDrift.fixable ? { type: 'replace', ...startLike, reason: netDrift.reason } : undefined;
    } else if (current.state === 'running') {
      drift = 'in-sync';
      reason = '';
      if (!rec || rec.handle !== current.id) {
        action = { type: 'adopt', key, workload, runtime: spec.runtime, handle: current.id, specHash: hash, startedFrom: spec, startedAt: current.startedAt, reason: 'running, not yet recorded by this agent' };
      } else if (rec.failures > 0 && current.startedAt) {
        const stableAt = Date.parse(current.startedAt) + input.stableAfterMs;
        if (now.getTime() >= stableAt) settled.push({ key, workload });
        else dueAt(stableAt); // its failure count is reset then
      }
    } else if (current.state === 'exited' || current.state === 'created') {
      if (wantsRestart(spec, current)) {
        drift = 'stopped';
        reason = describeExit(current);
        action = { type: 'restart', ...startLike, reason: `${describeExit(current)}, restart policy ${spec.restart}` };
      } else {
        drift = 'exited';
        reason = `${describeExit(current)}; restart policy ${spec.restart} leaves it stopped`;
      }
    } else {
      drift = 'pending';
      reason = current.state === 'starting' ? 'booting: waiting for SSH to answer' : `workload is ${current.state}`;
    }

    let backoffUntil: string | undefined;
    // The backoff holds back only the spec that failed: an operator's fix is tried at once.
    const until = rec?.nextAttemptAt;
    const sameSpecFailed = rec !== undefined && rec.failures > 0 && (rec.failedSpecHash === null || rec.failedSpecHash === attemptHash(spec));
    if (action && action.type !== 'adopt' && rec && until && Date.parse(until) > now.getTime() && (rec.failedSpecHash === null || rec.failedSpecHash === attemptHash(spec))) {
      backoffUntil = until;
      dueAt(Date.parse(until));
      reason += `${reason ? '; ' : ''}failed ${rec.failures}x, backing off until ${shortTime(until)}${rec.lastError ? ` (last error: ${rec.lastError})` : ''}`;
      held.push({ action, until, failures: rec.failures, lastError: rec.lastError ?? undefined });
      action = undefined;
    }
    const lastError = drift !== 'in-sync' && sameSpecFailed ? (rec?.lastError ?? undefined) : undefined;
    assessments.push({ ...common, desired: 'running', observed: current?.state ?? 'absent', drift, reason, action, backoffUntil, lastError });
  }

  for (const [ks, list] of unclaimed) {
    for (const o of list) {
      if (protectedKeys.has(ks)) continue;
      const key = o.key ?? { service: '?', component: o.name };
      const reason = o.key ? 'orphan: no such component in the registry' : 'orphan: carries this agent\'s label but no readable component label';
      assessments.push({ key, workload: o.name, runtime: o.runtime, desired: 'absent', observed: o.state, drift: 'orphan', reason, action: { type: 'remove', key: o.key, workload: o.name, runtime: o.runtime, reason }, backoffUntil: undefined, lastError: undefined, startedAt: o.startedAt, address: o.address, network: o.network, handle: o.id });
    }
  }

  assessments.sort((a, b) => keyString(a.key).localeCompare(keyString(b.key)) || a.workload.localeCompare(b.workload));
  const busy = input.busy ?? new Set<string>();
  const actions = assessments.flatMap((a) => (a.action && !busy.has(unitOf(a.action)) ? [a.action] : []));
  const housekeeping = planHousekeeping({ assessments, settled, listings: observed, instances: input.instances, leases: input.leases, busy, listedInFull: input.listedInFull ?? [], bridge: input.bridge });
  held.sort((a, b) => unitOf(a.action).localeCompare(unitOf(b.action)));
  return { assessments, actions, held, unknown: [...unknown.values()], housekeeping, requeueAt: Number.isFinite(due) ? new Date(due) : undefined };
}
