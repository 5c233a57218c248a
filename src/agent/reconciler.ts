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
import type { Runtime, RuntimeEvent } from '../runtime/types.js';
import { Executor, type ActionOutcome } from './executor.js';
import { withBootFilesChecked } from './images.js';
import { mustHoldLease } from './lease-check.js';
import { RuntimeObserver } from './observe.js';
import { ObservedView } from './observed-view.js';
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
 * Where a pass gets what runs and the bridge fact. A one-shot command lists everything and checks
 * the bridge; the running agent reads its live view and reuses the bridge fact until something
 * says it changed (see Reconciler).
 */
export interface ObservationSource {
  listings(): Promise<Partial<Record<RuntimeKind, RuntimeListing>>>;
  bridge(desired: DesiredState, compute: () => Promise<BridgeFact | undefined>): Promise<BridgeFact | undefined>;
}

const listEverything = (runtimes: Map<RuntimeKind, Runtime>): ObservationSource => {
  const observer = new RuntimeObserver(runtimes);
  return { listings: () => observer.observeAll(), bridge: (_desired, compute) => compute() };
};

/**
 * Reads everything the planner needs and plans. Changes nothing, unless `repairs` are given.
 * Runtimes are listed side by side, each within its own bound: one that does not answer makes
 * only its own components `unknown`; the others are planned as usual. `source` carries what is
 * known across passes (the agent's live view); a one-shot command lists everything.
 */
export async function assess(
  registry: Registry,
  runtimes: Map<RuntimeKind, Runtime>,
  config: AgentConfig,
  hostNet: HostNet,
  now = new Date(),
  repairs?: AssessRepairs,
  source = listEverything(runtimes),
): Promise<PlanResult & { listings: Partial<Record<RuntimeKind, RuntimeListing>>; desired: DesiredState }> {
  // The node-dependent rules of `apply` (boot file paths), for rows a master wrote directly.
  const desired = withBootFilesChecked(registry.desired.read(), vmPaths(config).imagesDirs);
  const [observed, bridge] = await Promise.all([
    source.listings(),
    source.bridge(desired, () => bridgeFact(hostNet, config, desired, registry.meta.agentId(), repairs)),
  ]);
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
  /** What runs, kept between passes: a pass lists a runtime only when the view cannot be trusted. */
  private readonly view: ObservedView;
  /** The bridge fact of the last look, and whether the desired state then let a VM use the bridge. */
  private bridgeSeen: { mayUse: boolean; fact: BridgeFact | undefined } | undefined;

  constructor(private readonly o: ReconcilerOptions) {
    // One observer across passes: a runtime that hangs is not asked twice at once, nor waited on by every pass.
    const observer = new RuntimeObserver(o.runtimes, {
      onAnswered: (kind) => {
        this.view.relist(`the ${kind} runtime answers again`, kind);
        o.onRuntimeAnswered?.(kind);
      },
    });
    this.view = new ObservedView(o.runtimes, observer);
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
      view: this.view,
    });
  }

  /** A runtime event: true when it changed what the agent knows (a pass is worth running). */
  noteEvent(e: RuntimeEvent): boolean {
    return this.view.onEvent(e);
  }

  /** The next pass lists every runtime (or one) and looks at the bridge again: a scheduled resync. */
  relist(why: string, kind?: RuntimeKind): void {
    this.view.relist(why, kind);
    if (kind === undefined) this.bridgeSeen = undefined;
  }

  /** The host's VM networking changed (a monitor saw it): the next pass looks at the bridge again. */
  bridgeChanged(): void {
    this.bridgeSeen = undefined;
  }

  /** The bridge fact, looked at again only when it may have changed (or a VM may now use the bridge). */
  private async bridgeOf(desired: DesiredState, compute: () => Promise<BridgeFact | undefined>): Promise<BridgeFact | undefined> {
    const mayUse = vmsMayUseBridge(desired);
    if (this.bridgeSeen?.mayUse === mayUse) return this.bridgeSeen.fact;
    const fact = await compute();
    // A fact that could not be told (ip did not answer) is not kept: the next pass asks again.
    this.bridgeSeen = mayUse && fact === undefined ? undefined : { mayUse, fact };
    return fact;
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
    let relisted: RuntimeKind[] = [];
    const source: ObservationSource = {
      listings: async () => {
        const read = await this.view.read();
        relisted = read.relisted;
        return read.listings;
      },
      bridge: (desired, compute) => this.bridgeOf(desired, compute),
    };
    const result = await assess(registry, runtimes, config, this.o.hostNet, now, { isolation: (o) => this.noteIsolation(o) }, source);
    this.noteListings(result.listings);
    for (const w of result.settled) registry.instances.clearFailures(w);
    // Components whose action ran while the runtimes were listed are in flux: judged next pass.
    const inFlux = this.executor.busySince(mark);
    this.collectLeases(result, inFlux);
    this.collectInstances(result, inFlux);
    // Garbage is looked for when a runtime was listed in full (start, resync), not on every event.
    for (const kind of relisted) {
      const rt = runtimes.get(kind)!;
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
