/**
 * Performs what the planner decided: the pass's housekeeping (through housekeeper.ts), then its
 * actions. The one place a pass changes anything. One action at a time per component (a component
 * never has two operations racing), a bounded number in parallel across components, and a
 * component that is busy or failing never holds up the others. Every action lands in the events
 * log as an intent written before the runtime is touched, settled after; failures feed the
 * exponential backoff that the planner honours. Once the agent is stopping (`shutdown`), nothing
 * new starts and a start still waiting for its workload to be ready is rolled back by the runtime.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Registry } from '../registry/index.js';
import type { Observed, Runtime } from '../runtime/types.js';
import type { VmPaths } from '../config/config.js';
import type { HostNet } from '../net/types.js';
import { placeVm, type NetPlacementSettings } from './placement.js';
import { Housekeeper, type HousekeepingDone } from './housekeeper.js';
import type { Housekeeping } from './housekeeping.js';
import { networkAfterRepair, type VmNetwork } from './network-drift.js';
import { nextAttemptAt, type BackoffPolicy } from './backoff.js';
import { attemptHash, canonicalJson, labelsFor, workloadName } from '../identity.js';
import { unitOf, type Action } from './planner.js';
import type { MetricsSink } from './metrics-sink.js';

export interface ExecutorOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
  agentId: string;
  backoff: BackoffPolicy;
  stopGraceSeconds: number;
  parallelism: number;
  vmPaths: VmPaths;
  /** Where VMs are placed, and the host's bridge, rules and TAPs (for the isolation repair). */
  net: NetPlacementSettings & { host: HostNet };
  log: Logger;
  /** Called after each action finished, so the loop can verify the result. */
  onSettled?: () => void;
  /** Told when an action on a workload begins and ends (the health monitor pauses its probes between). */
  onAction?: ((a: Action, phase: 'begin' | 'end') => void) | undefined;
  /** The agent's live view: what a start may skip looking up, and where each action's result goes. */
  view?: ActionView;
  /** Where actions, their reaction times and restarts are counted (`agent run`). */
  metrics?: MetricsSink | undefined;
}

/** The part of the live view (observed-view.ts) the executor reads and feeds. */
export interface ActionView {
  seen(kind: RuntimeKind, name: string): Observed | null | undefined;
  record(kind: RuntimeKind, name: string, observed: Observed | null, began: number): void;
  lookAgain(kind: RuntimeKind, name: string): void;
}

export interface ActionOutcome {
  action: Action;
  ok: boolean;
  message: string;
  /** The agent was stopping: the action was never started, or was rolled back. */
  interrupted?: boolean;
}

/** What a pass learnt before dispatching that its actions need: the isolation repair failed this pass. */
interface PassContext {
  repairError?: string | undefined;
  /** performance.now() when the signal that woke the pass arrived: each action's reaction time counts from it. */
  wokeAt?: number | undefined;
}

export class Executor {
  /** When each unit's last action ended, on the `settledCount` clock (one entry per component). */
  private readonly settledAt = new Map<string, number>();
  private settledCount = 0;
  private readonly inflight = new Map<string, Promise<ActionOutcome>>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  /** Aborted by `shutdown`: runtimes roll back starts under way when it fires. */
  private readonly stopping = new AbortController();

  private readonly housekeeper: Housekeeper;

  constructor(private readonly o: ExecutorOptions) {
    this.housekeeper = new Housekeeper({ registry: o.registry, runtimes: o.runtimes, host: o.net.host, bridge: o.net.bridge, log: o.log });
  }

  /**
   * A pass's plan: its housekeeping first (a VM the plan puts on the bridge once the rules are
   * loaded again must know whether they were), then its actions, minus those of components whose
   * state moved since `mark` (the listing the plan used saw them mid-change). Resolves once the
   * actions are dispatched (not finished).
   */
  async execute(p: { actions: Action[]; housekeeping: Housekeeping[] }, mark: number, wokeAt?: number): Promise<HousekeepingDone & { dispatched: Promise<ActionOutcome>[] }> {
    const done = await this.housekeeper.perform(p.housekeeping);
    const busy = this.busySince(mark);
    const repairError = done.isolation && !done.isolation.inPlace ? done.isolation.error : undefined;
    const dispatched = this.dispatch(p.actions.filter((a) => !busy.has(unitOf(a))), { repairError, wokeAt });
    return { ...done, dispatched };
  }

  /**
   * The agent is stopping: no action starts from now on (those queued for a slot are dropped), and
   * starts still waiting for readiness are rolled back (a booting VM is killed and its state dir
   * and lease go). Stops and removals under way finish. Idempotent.
   */
  shutdown(why: string): void {
    if (!this.stopping.signal.aborted) this.stopping.abort(new Error(`rolled back: the agent is stopping (${why})`));
  }

  get isShuttingDown(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Components with an action under way: the loop does not plan for them until it is done. */
  busyUnits(): Set<string> {
    return new Set(this.inflight.keys());
  }

  /** A point in the executor's history, for `busySince`. */
  mark(): number {
    return this.settledCount;
  }

  /**
   * Components whose state may have moved since `mark`: an action under way now, or one that ended
   * after it. A pass that listed the runtimes after `mark` saw them mid-change (a VM whose failed
   * start was still cleaning up looks `starting`), so it must not judge them on that listing.
   */
  busySince(mark: number): Set<string> {
    const units = this.busyUnits();
    for (const [unit, at] of this.settledAt) if (at > mark) units.add(unit);
    return units;
  }

  isBusy(a: Action): boolean {
    return this.inflight.has(unitOf(a));
  }

  /** Starts the actions whose component is idle; returns their promises. Never throws. */
  dispatch(actions: Action[], ctx: PassContext = {}): Promise<ActionOutcome>[] {
    const started: Promise<ActionOutcome>[] = [];
    for (const a of actions) {
      const unit = unitOf(a);
      if (this.isShuttingDown) break;
      if (this.inflight.has(unit)) continue; // one action at a time per component
      this.o.onAction?.(a, 'begin');
      // apply() catches the action's errors, but its bookkeeping may still throw: never leave that unhandled.
      const p = this.withSlot(() => (this.isShuttingDown ? Promise.resolve(notStarted(a)) : this.issue(a, ctx)))
        .catch((err: Error): ActionOutcome => ({ action: a, ok: false, message: err.message }))
        .then((o) => {
          this.o.metrics?.actionDone(a.type, a.runtime, o.interrupted ? 'interrupted' : o.ok ? 'ok' : 'failed');
          return o;
        })
        .finally(() => {
          this.o.onAction?.(a, 'end');
          this.inflight.delete(unit);
          this.settledAt.set(unit, ++this.settledCount);
          this.o.onSettled?.();
        });
      this.inflight.set(unit, p);
      started.push(p);
    }
    return started;
  }

  /** Resolves once every dispatched action has finished. */
  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  private async withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.o.parallelism) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /** The action leaves the queue for the runtime now: the end of its reaction time (a wait for a slot included). */
  private issue(a: Action, ctx: PassContext): Promise<ActionOutcome> {
    if (ctx.wokeAt !== undefined) this.o.metrics?.reacted((performance.now() - ctx.wokeAt) / 1000);
    return this.apply(a, ctx);
  }

  private runtime(kind: RuntimeKind): Runtime {
    const r = this.o.runtimes.get(kind);
    if (!r) throw new Error(`no ${kind} runtime configured`);
    return r;
  }

  private async apply(a: Action, ctx: PassContext): Promise<ActionOutcome> {
    const { registry, log } = this.o;
    const ev = { service: a.key?.service ?? null, component: a.key?.component ?? null, workload: a.workload, action: a.type, reason: a.reason };
    const alog = log.child({ workload: a.workload, action: a.type });
    // The intent is in the log before any runtime is touched: a kill -9 from here on leaves a
    // pending row that the next agent marks interrupted. Adopting only writes the registry.
    const intent = a.type === 'adopt' ? undefined : registry.events.begin(ev);
    const settle = (outcome: 'ok' | 'error' | 'info' | 'interrupted', message: string): void => {
      if (intent === undefined) registry.events.append({ ...ev, outcome, message });
      else registry.events.settle(intent, outcome, message);
    };
    try {
      const message = await this.perform(a, Date.now(), ctx);
      settle(a.type === 'adopt' ? 'info' : 'ok', message);
      alog.info({ reason: a.reason }, `${a.type} ${a.workload}: ${message}`);
      return { action: a, ok: true, message };
    } catch (err) {
      const message = (err as Error).message;
      if (this.isShuttingDown && err === this.stopping.signal.reason) {
        // Not a failure of the component: nothing is counted towards its backoff.
        settle('interrupted', message);
        alog.info({ reason: a.reason }, `${a.type} ${a.workload}: ${message}`);
        return { action: a, ok: true, message, interrupted: true };
      }
      settle('error', message);
      // What a failed action left is unknown: the next pass looks before it plans with it.
      if (a.type !== 'adopt') this.o.view?.lookAgain(a.runtime, a.workload);
      if (a.type === 'start' || a.type === 'restart' || a.type === 'replace') this.recordFailure(a, message);
      alog.warn({ reason: a.reason, err: message }, `${a.type} ${a.workload} failed`);
      return { action: a, ok: false, message };
    }
  }

  /** Counts one more failure of this spec of the component and sets when it may be tried again. */
  private recordFailure(a: Extract<Action, { spec: unknown }>, message: string): void {
    const attempted = attemptHash(a.spec);
    const failures = this.o.registry.instances.failuresFor(a.workload, attempted) + 1;
    const next = nextAttemptAt(new Date(), failures, this.o.backoff);
    this.o.registry.instances.recordFailure(a.workload, { ...a.key, runtime: a.runtime }, { failures, nextAttemptAt: next.toISOString(), error: message, specHash: attempted });
  }

  private async perform(a: Action, began: number, ctx: PassContext): Promise<string> {
    const { registry } = this.o;
    switch (a.type) {
      case 'adopt':
        registry.instances.recordAdopted({ workload: a.workload, ...a.key, runtime: a.runtime, handle: a.handle, specHash: a.specHash, spec: canonicalJson(a.startedFrom), startedAt: a.startedAt ?? null });
        return `adopted ${a.handle.slice(0, 12)}`;
      case 'remove': {
        const rt = this.runtime(a.runtime);
        const how = await rt.stop(a.workload, this.o.stopGraceSeconds);
        await rt.remove(a.workload);
        this.o.view?.record(a.runtime, a.workload, null, began);
        registry.instances.forget(a.workload);
        registry.drain.unmark(a.workload);
        // The component's own workload is gone: its ports (and IP) are free for others.
        if (a.key && a.workload === workloadName(a.key)) registry.leases.releaseComponent(a.key);
        return `${how}, removed`;
      }
      case 'stop': {
        // The node is drained: stopped gracefully and kept. Marked first, so that after an undrain
        // the planner starts it again even if this agent dies mid-stop.
        const rt = this.runtime(a.runtime);
        registry.drain.markStopped(a.workload, new Date());
        let how: string;
        try {
          how = await rt.stop(a.workload, this.o.stopGraceSeconds);
        } catch (err) {
          registry.drain.unmark(a.workload); // still running, as far as anyone knows: a later pass stops it again
          throw err;
        }
        this.o.view?.lookAgain(a.runtime, a.workload);
        return `${how} (drained)`;
      }
      case 'replace': {
        const rt = this.runtime(a.runtime);
        await rt.stop(a.workload, this.o.stopGraceSeconds);
        await rt.remove(a.workload);
        this.o.view?.record(a.runtime, a.workload, null, began);
        return this.start(a, false, 'replaced', ctx);
      }
      case 'restart': {
        // The workload exited: that is a failure of the component, and a crash loop must back off.
        // The restart happens now; the next one waits for the backoff.
        this.recordFailure(a, a.reason);
        // An unhealthy workload still runs: it is stopped first (gracefully), then started again.
        if (a.stopFirst) await this.runtime(a.runtime).stop(a.workload, this.o.stopGraceSeconds);
        return this.start(a, true, 'restarted', ctx);
      }
      case 'start':
        return this.start(a, false, 'started', ctx);
    }
  }

  /** The network the plan chose for a VM, unless it needed this pass's isolation repair and that failed. */
  private networkOf(a: Extract<Action, { spec: unknown }>, ctx: PassContext): VmNetwork {
    if (!a.network) throw new Error('no network was planned for this VM (a planner bug)');
    return networkAfterRepair(a.network, this.o.net.bridge.bridge, ctx.repairError);
  }

  private async start(a: Extract<Action, { spec: unknown }>, restarted: boolean, verb: string, ctx: PassContext): Promise<string> {
    const { registry } = this.o;
    const rt = this.runtime(a.runtime);
    this.stopping.signal.throwIfAborted(); // e.g. a replace whose old workload went while the agent began to stop
    const vm = a.runtime === 'unikernel' ? await placeVm(registry, this.o.vmPaths, this.o.net, a.key, a.workload, a.spec, this.networkOf(a, ctx)) : undefined;
    let o;
    try {
      const signal = this.stopping.signal;
      const seen = this.o.view?.seen(a.runtime, a.workload);
      const began = Date.now();
      o = await rt.start({ name: a.workload, key: a.key, specHash: a.specHash, labels: labelsFor(this.o.agentId, a.key, a.specHash), spec: a.spec, vm, signal, seen });
      this.o.view?.record(a.runtime, a.workload, o, began);
    } catch (err) {
      // A VM that never ran keeps no lease: nothing half-started stays behind.
      if (vm && !(await rt.list().catch(() => [])).some((w) => w.name === a.workload)) registry.leases.releaseComponent(a.key);
      throw err;
    }
    registry.instances.recordStarted({ workload: a.workload, ...a.key, runtime: a.runtime, handle: o.id, specHash: a.specHash, spec: canonicalJson(a.spec), restarted });
    registry.drain.unmark(a.workload); // it runs again: no longer one a drain stopped
    return `${verb} ${o.id.slice(0, 12)}${o.address ? ` at ${o.address}` : ''}`;
  }
}

const notStarted = (action: Action): ActionOutcome => ({ action, ok: true, message: 'not started: the agent is stopping', interrupted: true });
