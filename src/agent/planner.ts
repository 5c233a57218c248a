/**
 * The planner: a pure function from (desired, observed, agent records, the bridge, what is in
 * flux, now) to a per-component assessment (what drifted and why), the actions that would repair
 * it (each VM start with the network it goes on), and the pass's housekeeping (housekeeping.ts).
 * Level-triggered: it looks only at the state now, never at what happened, so running it twice
 * plans the same thing. `agent status` shows the assessments; `agent plan` the actions; `agent
 * run` executes actions and housekeeping (executor.ts). On a drained node it only stops
 * (drain-plan.ts).
 */
import { keyString, type ComponentKey } from '../errors.js';
import type { ComponentSpec, RuntimeKind } from '../manifest/schema.js';
import type { InstanceRecord } from '../registry/index.js';
import type { Observed } from '../runtime/types.js';
import { attemptHash, byCodeUnits, SHAPING_FIELDS, specHash, workloadName } from '../identity.js';
import { specChanges } from '../manifest/diff.js';
import { admitPlanned } from './admission.js';
import { planHousekeeping } from './housekeeping.js';
import { networkDrift, vmNetwork, type NetworkDrift } from './network-drift.js';
import { currentVerdict, unhealthyDrift } from './health/verdict.js';
import { staleDrainMarks, stoppedByDrain, whileDrained } from './drain-plan.js';

export type { Action, ActionType, Assessment, Drift, HeldAction, PlanInput, PlanResult, RuntimeListing, StartLike, UnknownRuntime } from './plan-types.js';
import type { Action, Assessment, Drift, HeldAction, PlanInput, PlanResult, UnknownRuntime } from './plan-types.js';

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
      // A drain stops its workload too (nothing else is done to it: its row cannot say what it wants).
      const action = input.drained && o ? whileDrained(o, { key, workload: o.name, runtime: o.runtime }).action : undefined;
      assessments.push({ ...base, runtime: o?.runtime, desired: activeServices.get(dc.service) ? 'running' : 'absent', observed: o?.state ?? 'absent', drift: 'invalid', reason: `registry row is invalid: ${dc.error}`, action, handle: o?.id });
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
    const verdict = spec.health ? currentVerdict(input.health, current) : undefined;
    const common = { ...base, runtime: spec.runtime, address: current?.address, network: current?.network, handle: current?.id, startedAt: current?.startedAt, health: verdict };

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
    let sick: ReturnType<typeof unhealthyDrift>;
    const network = spec.runtime === 'unikernel' ? vmNetwork(spec, input.bridge) : undefined;
    const startLike = { key, workload, runtime: spec.runtime, spec, specHash: hash, ...(network ? { network } : {}) };
    if (input.drained) {
      ({ drift, reason, action } = whileDrained(current, { key, workload, runtime: spec.runtime }));
    } else if (!current) {
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
    } else if (current.state === 'running' && (sick = unhealthyDrift(spec, verdict))) {
      drift = 'unhealthy';
      reason = sick.reason;
      action = sick.restart ? { type: 'restart', ...startLike, stopFirst: true, reason: `${sick.reason}, restart policy ${spec.restart}` } : undefined;
      if (!sick.restart) reason += `; restart policy ${spec.restart} leaves it running`;
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
    } else if (stoppedByDrain(current, input.stoppedByDrain)) {
      drift = 'stopped';
      reason = 'stopped by the drain; the node is undrained';
      action = { type: 'start', ...startLike, reason: 'stopped by the drain, node undrained' };
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
    if (action && action.type !== 'adopt' && action.type !== 'stop' && rec && until && Date.parse(until) > now.getTime() && (rec.failedSpecHash === null || rec.failedSpecHash === attemptHash(spec))) {
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

  assessments.sort((a, b) => byCodeUnits(keyString(a.key), keyString(b.key)) || byCodeUnits(a.workload, b.workload));
  const busy = input.busy ?? new Set<string>();
  // Starts that do not fit the host lose their action here: their components become `pending`.
  const admission = admitPlanned(input, assessments, busy);
  const actions = assessments.flatMap((a) => (a.action && !busy.has(unitOf(a.action)) ? [a.action] : []));
  const housekeeping = planHousekeeping({ assessments, settled, listings: observed, instances: input.instances, leases: input.leases, busy, listedInFull: input.listedInFull ?? [], bridge: input.bridge });
  housekeeping.push(...staleDrainMarks(input, assessments, busy));
  held.sort((a, b) => byCodeUnits(unitOf(a.action), unitOf(b.action)));
  const requeueAt = Number.isFinite(due) ? new Date(due) : undefined;
  return { assessments, actions, held, unknown: [...unknown.values()], notAdmitted: admission?.notAdmitted ?? [], resources: admission?.resources, housekeeping, requeueAt, drained: input.drained ?? false };
}
