/**
 * One reconcile pass, in one shape: observe (desired state, the live view of what runs, one bridge
 * fact) → plan (pure: actions, each VM's network, housekeeping) → execute (the executor, the one
 * place that changes anything). Level-triggered: each pass starts from what is true now; observe
 * repairs nothing.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { bridgeSettings, vmPaths, type AgentConfig } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { DesiredState, InstanceRecord, Registry } from '../registry/index.js';
import type { HostNet } from '../net/types.js';
import { vmsMayUseBridge } from '../net/watch.js';
import type { BridgeFact } from './network-drift.js';
import type { Runtime, RuntimeEvent } from '../runtime/types.js';
import { Executor, type ActionOutcome, type ExecutorOptions } from './executor.js';
import { storedVerdicts, type HealthVerdict } from './health/verdict.js';
import { passReport, type MetricsSink, type PassReport } from './metrics-sink.js';
import { hostAdmission } from './capacity.js';
import { withBootFilesChecked } from './images.js';
import { RuntimeObserver } from './observe.js';
import { ObservedView } from './observed-view.js';
import type { IsolationOutcome } from './housekeeper.js';
import { plan, type PlanInput, type PlanResult, type RuntimeListing } from './planner.js';
import { specHash } from '../identity.js';

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
  /** Where passes and actions are reported (`agent run`); none: nothing is recorded. */
  metrics?: MetricsSink | undefined;
  /** The health monitor's verdicts (`agent run`); none: health is not planned with. */
  health?: (() => ReadonlyMap<string, HealthVerdict>) | undefined;
  onAction?: ExecutorOptions['onAction'];
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

/** What a pass plans with, besides the registry's own rows. */
export interface Observation {
  desired: DesiredState;
  listings: Partial<Record<RuntimeKind, RuntimeListing>>;
  bridge: BridgeFact | undefined;
}

/**
 * When what an assessment shows was observed (ms since the epoch), for status: per runtime its
 * listing (a fresh one, or the live view's last), per workload the observation it rests on.
 * Undefined where nothing was observed (a runtime that could not list).
 */
export interface ObservationTimes {
  runtimes: Partial<Record<RuntimeKind, number>>;
  workload(kind: RuntimeKind, name: string): number | undefined;
}

/** An assessment (plan + what it was planned from), and when its observations were made. */
/** `instances`: the agent's records the plan was made with (status shows their restart counts: one read serves both). */
export type Assessed = PlanResult & Observation & { times: ObservationTimes; instances: InstanceRecord[] };

const listEverything = (runtimes: Map<RuntimeKind, Runtime>): ObservationSource => {
  const observer = new RuntimeObserver(runtimes);
  return { listings: () => observer.observeAll(), bridge: (_desired, compute) => compute() };
};

/**
 * Reads desired state, what runs and the bridge (one fact per pass). Changes nothing. Runtimes are
 * listed side by side, each within its own bound: one that does not answer makes only its own
 * components `unknown`; the others are planned as usual.
 */
async function observe(registry: Registry, config: AgentConfig, hostNet: HostNet, source: ObservationSource, alongside?: () => void): Promise<Observation> {
  // The listing first: a runtime answers (podman ps: ~100-200 ms) while the registry is read and
  // its specs parsed, instead of after. Marked handled: a read that throws leaves it unawaited.
  const listed = source.listings();
  listed.catch(() => undefined);
  // A listing spawns its command (`podman ps`) only after a few awaits; the registry read below is
  // synchronous and would run first. One turn of the event loop lets every spawn happen before it.
  await new Promise<void>((resolve) => setImmediate(resolve));
  // The node-dependent rules of `apply` (boot file paths), for rows a master wrote directly.
  const desired = readDesired(registry, config);
  // The plan needs every spec's hash (kept by spec object: identity.ts): made now, while the
  // runtimes list, rather than after they answer.
  for (const c of desired.components) if (c.valid) specHash(c.spec);
  // The caller's own reads that can be made now (assess: the rest of the registry).
  alongside?.();
  const [listings, bridge] = await Promise.all([
    listed,
    source.bridge(desired, () => bridgeFact(hostNet, config, desired, registry.meta.agentId())),
  ]);
  return { desired, listings, bridge };
}

/**
 * Observes and plans; changes nothing (`agent status`, `agent plan`). `source` carries what is
 * known across passes (the agent's live view); a one-shot command lists everything.
 */
export async function assess(
  registry: Registry,
  runtimes: Map<RuntimeKind, Runtime>,
  config: AgentConfig,
  hostNet: HostNet,
  now = new Date(),
  source = listEverything(runtimes),
  alongside?: () => void,
): Promise<Assessed> {
  const began = Date.now();
  // A one-shot command reads the rest of the registry while the runtimes list, too (and the
  // caller's own reads, `alongside`).
  let facts: StandingFacts | undefined;
  const seen = await observe(registry, config, hostNet, source, () => {
    facts = standingFacts(registry, config);
    alongside?.();
  });
  // A fresh listing: everything it shows was observed when it was asked for.
  const listed: ObservationTimes['runtimes'] = {};
  for (const [kind, l] of Object.entries(seen.listings) as Array<[RuntimeKind, RuntimeListing | undefined]>) if (l?.ok) listed[kind] = began;
  const times: ObservationTimes = { runtimes: listed, workload: (kind) => listed[kind] };
  const input = planInput(seen, facts!, now);
  // Without a running agent, the verdicts its monitor last wrote (for the run they are about).
  const health = storedVerdicts(input.instances);
  return { ...plan({ ...input, health }), ...seen, times, instances: input.instances };
}

/** The desired state a pass plans with: the registry's rows, with this node's rules for boot files. */
const readDesired = (registry: Registry, config: AgentConfig): DesiredState => withBootFilesChecked(registry.desired.read(), vmPaths(config).imagesDirs);

/** What a plan takes from the registry and the node besides the observation itself. */
type StandingFacts = Pick<PlanInput, 'instances' | 'stableAfterMs' | 'admission' | 'drained' | 'stoppedByDrain'>;

const standingFacts = (registry: Registry, config: AgentConfig): StandingFacts => ({
  instances: registry.instances.all(),
  stableAfterMs: config.stable_after_seconds * 1000,
  admission: hostAdmission(config),
  drained: registry.drain.state() !== undefined,
  stoppedByDrain: registry.drain.stoppedByDrain(),
});

const planInput = (seen: Observation, facts: StandingFacts, now: Date, health?: ReadonlyMap<string, HealthVerdict>): PlanInput => ({
  ...facts,
  health,
  desired: seen.desired,
  observed: seen.listings,
  now,
  bridge: seen.bridge,
});

/**
 * Whether the VM bridge exists (one `ip` call), its isolation rules are in place (two `nft list`
 * calls) and other agents' VMs are on it, checked only when a VM component could use the bridge.
 * Looks only: a bridge without its rules would let VMs reach each other, and loading them again
 * is housekeeping the planner decides and the executor performs.
 */
async function bridgeFact(host: HostNet, config: AgentConfig, desired: DesiredState, agentId: string): Promise<BridgeFact | undefined> {
  if (!vmsMayUseBridge(desired)) return undefined;
  const name = config.net.bridge;
  // When `ip` cannot tell, VM networks go unchecked this pass and no VM goes on the bridge: a guess could replace every VM.
  const present = await host.bridgePresence(name);
  if (!present) return { name, present };
  const [rules, sharing] = await Promise.all([
    host.checkRules(bridgeSettings(config)),
    host.otherAgentsOnBridge(name, agentId).then(
      (otherAgents) => ({ otherAgents, sharingUnknown: undefined }),
      (err: Error) => ({ otherAgents: undefined, sharingUnknown: err.message }),
    ),
  ]);
  return { name, present, isolated: rules.loaded, isolationDetail: rules.detail, rulesLoadable: rules.nft, ...sharing };
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
      onAction: o.onAction,
      view: this.view,
      metrics: o.metrics,
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
    this.bridgeSeen = mayUse && fact?.present === undefined ? undefined : { mayUse, fact };
    return fact;
  }

  /**
   * The kept bridge fact after the pass tried to load the isolation rules again: in place, or
   * known not to load (not tried again, and no VM put on the bridge, until the fact is looked at anew).
   */
  private afterIsolation(planned: BridgeFact | undefined, o: IsolationOutcome): void {
    const seen = this.bridgeSeen;
    if (!seen?.fact || seen.fact !== planned) return;
    seen.fact = o.inPlace ? { ...seen.fact, isolated: true, isolationDetail: 'loaded again by this agent', repairError: undefined } : { ...seen.fact, repairError: o.error };
  }

  /** The live view as it stands (each runtime's listing state and times), for health. No I/O. */
  viewNow(): ReturnType<ObservedView['snapshot']> {
    return this.view.snapshot();
  }

  /**
   * What `status` and `plan` show while the agent runs: planned purely (as `assess` plans, nothing
   * in flux held back) from the registry now, the live view as it stands and the kept bridge fact.
   * No listing, no inspect, no bridge look: only the registry read and the boot-file checks.
   */
  assessNow(now = new Date()): Assessed {
    const { registry, config } = this.o;
    const desired = readDesired(registry, config);
    const snapshot = this.view.snapshot();
    const listings: Observation['listings'] = {};
    const listed: ObservationTimes['runtimes'] = {};
    for (const [kind, s] of Object.entries(snapshot) as Array<[RuntimeKind, (typeof snapshot)[RuntimeKind]]>) {
      if (!s) continue;
      listings[kind] = s.listing;
      if (s.listing.ok && s.listedAt !== undefined) listed[kind] = s.listedAt;
    }
    const workload = (kind: RuntimeKind, name: string): number | undefined =>
      listed[kind] === undefined ? undefined : (snapshot[kind]?.seenAt.get(name) ?? listed[kind]);
    const seen: Observation = { desired, listings, bridge: this.bridgeSeen?.fact };
    const input = planInput(seen, standingFacts(registry, config), now, this.o.health?.());
    return { ...plan(input), ...seen, times: { runtimes: listed, workload }, instances: input.instances };
  }

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

  /**
   * One pass: observe (the live view, one bridge fact), plan (pure: actions and housekeeping),
   * execute (housekeeping, then the actions of idle components). Resolves when the actions are
   * dispatched (not finished), with the pass's counts (what metrics and systemd's STATUS show).
   * `wokeAt` (performance.now()): when the signal that asked for this pass arrived, for the
   * reaction time of the actions it issues.
   */
  async pass(opts: { wokeAt?: number | undefined } = {}): Promise<{ result: PlanResult & Observation; dispatched: Promise<ActionOutcome>[]; report: PassReport }> {
    const { registry, config, log } = this.o;
    const began = performance.now();
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
    const seen = await observe(registry, config, this.o.hostNet, source);
    this.noteListings(seen.listings);
    // A component with an action under way, or one that ended while the runtimes were listed, is
    // in flux: planned for next pass (the action's end wakes one).
    const busy = this.executor.busySince(mark);
    // Garbage is looked for when a runtime was listed in full (start, resync), not on every event.
    const input = { ...planInput(seen, standingFacts(registry, config), now, this.o.health?.()), busy, leases: registry.leases.all(), listedInFull: relisted };
    const result = plan(input);
    const { dispatched, isolation } = await this.executor.execute(result, mark, opts.wokeAt);
    if (isolation) this.afterIsolation(seen.bridge, isolation);
    registry.meta.beat(process.pid, now);
    const report = passReport({ ...result, listings: seen.listings, leases: input.leases }, (performance.now() - began) / 1000, new Date());
    this.o.metrics?.passDone(report);
    const drifted = result.assessments.filter((a) => a.drift !== 'in-sync').length;
    log.debug({ components: result.assessments.length, drifted, actions: dispatched.length, housekeeping: result.housekeeping.length }, 'reconcile pass');
    return { result: { ...result, ...seen }, dispatched, report };
  }
}
