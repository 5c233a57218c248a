/**
 * One reconcile pass: read desired state, observe every runtime, plan, dispatch the actions of
 * idle components. Level-triggered: each pass starts from what is true now.
 */
import type { Logger } from 'pino';
import { bridgeSettings, vmPaths, type AgentConfig } from '../config/config.js';
import { keyString, type ComponentKey } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import { RegistryUnwritableError, type DesiredState, type Registry } from '../registry/index.js';
import type { HostNet } from '../net/types.js';
import { vmsMayUseBridge } from '../net/watch.js';
import type { BridgeFact } from './network-drift.js';
import type { Runtime } from '../runtime/types.js';
import { Executor, type ActionOutcome } from './executor.js';
import { withBootFilesChecked } from './images.js';
import { mustHoldLease } from './lease-check.js';
import { RuntimeObserver } from './observe.js';
import { plan, type PlanResult, type RuntimeListing } from './planner.js';
import { staleInstances } from './stale-instances.js';

export interface ReconcilerOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
  /** The host's VM networking (bridge, rules, TAPs). */
  hostNet: HostNet;
  config: AgentConfig;
  log: Logger;
  onActionSettled?: () => void;
  /** A runtime that had stopped answering answers again: a pass should look now. */
  onRuntimeAnswered?: (kind: RuntimeKind) => void;
}

/** What a pass may repair before it plans (status and plan repair nothing). */
export interface AssessRepairs {
  /** Load the isolation rules again when the bridge exists without them; told what happened. */
  isolation: (outcome: { reloaded: true } | { reloaded: false; error: string }) => void;
}

/**
 * Reads everything the planner needs and plans. Changes nothing, unless `repairs` are given.
 * Runtimes are listed side by side, each within its own bound: one that does not answer makes
 * only its own components `unknown`; the others are planned as usual. `observer` carries what is
 * known across passes (a listing still under way); a one-shot command gets a fresh one.
 */
export async function assess(
  registry: Registry,
  runtimes: Map<RuntimeKind, Runtime>,
  config: AgentConfig,
  hostNet: HostNet,
  now = new Date(),
  repairs?: AssessRepairs,
  observer = new RuntimeObserver(runtimes),
): Promise<PlanResult & { listings: Partial<Record<RuntimeKind, RuntimeListing>>; desired: DesiredState }> {
  // The node-dependent rules of `apply` (boot file paths), for rows a master wrote directly.
  const desired = withBootFilesChecked(registry.desired.read(), vmPaths(config).imagesDirs);
  const [observed, bridge] = await Promise.all([observer.observeAll(), bridgeFact(hostNet, config, desired, registry.meta.agentId(), repairs)]);
  const result = plan({
    desired,
    observed,
    instances: registry.instances.all(),
    now,
    stableAfterMs: config.stable_after_seconds * 1000,
    bridge,
  });
  return { ...result, listings: observed, desired };
}

/**
 * Whether the VM bridge exists (one `ip` call) and its isolation rules are in place (two `nft list`
 * calls), checked only when a VM component could use the bridge. A bridge without its rules would
 * let VMs reach each other: a pass loads them again (a host firewall reload with `flush ruleset`
 * removes them), and until then no VM is put on the bridge.
 */
async function bridgeFact(host: HostNet, config: AgentConfig, desired: DesiredState, agentId: string, repairs?: AssessRepairs): Promise<BridgeFact | undefined> {
  if (!vmsMayUseBridge(desired)) return undefined;
  const name = config.net.bridge;
  // When `ip` cannot tell, VM networks go unchecked this pass: a guess could replace every VM.
  const present = await host.bridgePresence(name);
  if (present === undefined) return undefined;
  if (!present) return { name, present };
  const settings = bridgeSettings(config);
  // Undefined when `ip` cannot tell: the sharing check is then skipped, not guessed.
  const sharing = host.otherAgentsOnBridge(name, agentId).catch(() => undefined);
  if (repairs) {
    try {
      if (await host.ensureRules(settings)) repairs.isolation({ reloaded: true });
      return { name, present, isolated: true, otherAgents: await sharing };
    } catch (err) {
      const error = (err as Error).message;
      repairs.isolation({ reloaded: false, error });
      return { name, present, isolated: false, isolationDetail: error, otherAgents: await sharing };
    }
  }
  const rules = await host.checkRules(settings);
  return { name, present, isolated: rules.loaded, isolationDetail: rules.detail, otherAgents: await sharing };
}

/** Re-takes a running VM's address; on a disk that refuses writes, says so and lets the pass go on. */
function takeLease(registry: Registry, a: { workload: string; address: string; key: ComponentKey }, log: Logger): boolean {
  try {
    return registry.leases.take('ip', a.address, a.key, 'bridge');
  } catch (err) {
    if (!(err instanceof RegistryUnwritableError)) throw err;
    log.error({ workload: a.workload, ip: a.address, err: err.message }, 'cannot re-take the lease of a running VM now');
    return false;
  }
}

export class Reconciler {
  readonly executor: Executor;
  /** One across passes: a runtime that hangs is not asked twice at once, nor waited on by every pass. */
  private readonly observer: RuntimeObserver;

  constructor(private readonly o: ReconcilerOptions) {
    this.observer = new RuntimeObserver(o.runtimes, { onAnswered: o.onRuntimeAnswered });
    this.executor = new Executor({
      registry: o.registry,
      runtimes: o.runtimes,
      agentId: o.registry.meta.agentId(),
      backoff: { baseMs: o.config.backoff.base_ms, maxMs: o.config.backoff.max_ms },
      stopGraceSeconds: o.config.stop_grace_seconds,
      parallelism: o.config.parallelism,
      vmPaths: vmPaths(o.config),
      net: { bridge: bridgeSettings(o.config), subnet: o.config.net.subnet, host: o.hostNet },
      log: o.log,
      onSettled: o.onActionSettled,
    });
  }

  /**
   * Leases of components that are neither desired nor running anywhere are given back (an agent
   * that crashed between a start and its bookkeeping leaves no lease without a VM). Skipped when a
   * runtime could not list: then nobody knows what runs.
   */
  private collectLeases(result: Awaited<ReturnType<typeof assess>>, busy: ReadonlySet<string>): void {
    if (Object.values(result.listings).some((l) => l && !l.ok)) return;
    const { registry, log } = this.o;
    // No VM without a lease: a bridge VM that runs holds its IP in the registry, whatever happened
    // to the row (so the address is never handed to a second VM).
    for (const a of result.assessments) {
      if (!mustHoldLease(a, busy)) continue;
      const owner = registry.leases.all().find((l) => l.kind === 'ip' && l.value === a.address);
      if (!owner && takeLease(registry, a, log)) log.warn({ workload: a.workload, ip: a.address }, 're-took the lease of a running VM');
      else if (owner && (owner.service !== a.key.service || owner.component !== a.key.component)) {
        log.error({ workload: a.workload, ip: a.address, leasedTo: `${owner.service}/${owner.component}` }, 'a running VM uses an address leased to another component');
      }
    }
    const keep = new Set(result.assessments.filter((a) => a.desired === 'running' || a.observed !== 'absent').map((a) => keyString(a.key)));
    for (const l of registry.leases.all()) {
      if (!keep.has(`${l.service}/${l.component}`) && !busy.has(`${l.service}/${l.component}`)) {
        registry.leases.release(l.kind, l.value);
      }
    }
  }

  /**
   * Rows of workloads that exist nowhere and that no component wants are forgotten (a failed
   * start's backoff after its service was deleted; a removal finished by a child process of an
   * agent killed before it could record it). Only when every runtime listed.
   */
  private collectInstances(result: Awaited<ReturnType<typeof assess>>, busy: ReadonlySet<string>): void {
    const { registry, log } = this.o;
    const stale = staleInstances({ instances: registry.instances.all(), listings: result.listings, assessments: result.assessments, busy });
    for (const w of stale) registry.instances.forget(w);
    if (stale.length > 0) log.info({ workloads: stale }, 'forgot the records of workloads that exist nowhere and that no component wants');
  }

  private isolationError: string | undefined;
  private readonly unlisted = new Set<RuntimeKind>();

  /** A warning when a runtime stops listing (its components are `unknown` and left alone), a note when it lists again. */
  private noteListings(listings: Partial<Record<RuntimeKind, RuntimeListing>>): void {
    for (const [kind, l] of Object.entries(listings) as Array<[RuntimeKind, RuntimeListing | undefined]>) {
      if (l && !l.ok && !this.unlisted.has(kind)) {
        this.unlisted.add(kind);
        this.o.log.warn({ runtime: kind, err: l.error }, `the ${kind} runtime could not list: its components are unknown and left alone`);
      } else if (l?.ok && this.unlisted.delete(kind)) {
        this.o.log.info({ runtime: kind }, `the ${kind} runtime lists again`);
      }
    }
  }

  /** An event when the pass reloaded the rules, or when it first failed to (not every pass). */
  private noteIsolation(o: { reloaded: true } | { reloaded: false; error: string }): void {
    const { registry, log, config } = this.o;
    const ev = { service: null, component: null, workload: config.net.bridge, action: 'isolate', reason: 'the isolation rules of the VM bridge were missing or changed' };
    if (o.reloaded) {
      this.isolationError = undefined;
      registry.events.append({ ...ev, outcome: 'ok', message: `reloaded (tables inet ${config.net.table}, bridge ${config.net.table})` });
      log.warn({ bridge: config.net.bridge }, 'isolation rules were missing or changed: reloaded');
    } else if (o.error !== this.isolationError) {
      this.isolationError = o.error;
      registry.events.append({ ...ev, outcome: 'error', message: o.error });
      log.error({ bridge: config.net.bridge, err: o.error }, 'isolation rules are not in place and cannot be loaded: no VM is put on the bridge');
    }
  }

  /** Plans and dispatches; resolves when the actions are dispatched (not finished). */
  async pass(): Promise<{ result: Awaited<ReturnType<typeof assess>>; dispatched: Promise<ActionOutcome>[] }> {
    const { registry, runtimes, config, log } = this.o;
    const now = new Date();
    const mark = this.executor.mark();
    const result = await assess(registry, runtimes, config, this.o.hostNet, now, { isolation: (o) => this.noteIsolation(o) }, this.observer);
    this.noteListings(result.listings);
    for (const w of result.settled) registry.instances.clearFailures(w);
    // Components whose action ran while the runtimes were listed are in flux: judged next pass.
    const inFlux = this.executor.busySince(mark);
    this.collectLeases(result, inFlux);
    this.collectInstances(result, inFlux);
    for (const rt of runtimes.values()) {
      const freed = await rt.collectGarbage?.().catch((err: Error) => (log.warn({ err: err.message }, 'garbage collection failed'), []));
      if (freed?.length) log.info({ freed }, 'freed resources no workload owns');
    }
    // A component with an action under way, or one that ended while the runtimes were listed, is
    // left alone: its state is in flux (the action's end wakes another pass).
    const busy = this.executor.busySince(mark);
    const actions = result.actions.filter((a) => !(a.key && busy.has(keyString(a.key))));
    const dispatched = this.executor.dispatch(actions);
    registry.meta.beat(process.pid, now);
    const drifted = result.assessments.filter((a) => a.drift !== 'in-sync').length;
    log.debug({ components: result.assessments.length, drifted, actions: actions.length }, 'reconcile pass');
    return { result, dispatched };
  }
}
