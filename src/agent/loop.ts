/**
 * The agent's main loop. Wakes on: a commit to the registry by another connection (a master's
 * push: the registry's files are watched, and PRAGMA data_version polled as the fallback), a
 * runtime event (a container died), a change of the host's VM networking (nft and ip monitors),
 * an action that finished (to verify it), the time the last pass said something becomes due (a
 * backoff ending: one requeue timer), and the cron-scheduled full resync. Wakes coalesce: one
 * pass at a time, wakes in the same turn of the event loop make one pass, and wakes during a pass
 * make exactly one more.
 */
import { performance } from 'node:perf_hooks';
import { CronJob } from 'cron';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Registry } from '../registry/index.js';
import type { Runtime } from '../runtime/types.js';
import { watchRegistryFiles } from '../registry/change-watch.js';
import { Reconciler, type Assessed } from './reconciler.js';
import type { RuntimeSnapshot } from './observed-view.js';
import { HostNetWatchSwitch } from '../net/watch.js';
import type { HostNet } from '../net/types.js';
import { abortCommands } from '../runtime/command.js';
import type { MetricsSink } from './metrics-sink.js';
import type { ServiceWatch } from './service-watch.js';
import { createHealthMonitor, healthTargets, killProbes, type HealthMonitor } from './health/index.js';

export interface LoopOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
  hostNet: HostNet;
  config: AgentConfig;
  log: Logger;
  /** How the registry's files are watched; tests pass one that fails, to exercise the poll alone. */
  watchRegistry?: typeof watchRegistryFiles;
  /** Where passes, actions and reaction times are reported (`agent run`); none: nothing is recorded. */
  metrics?: MetricsSink | undefined;
  /** Readiness and watchdog for systemd (`agent run` under a notify service); none: nothing is sent. */
  service?: ServiceWatch | undefined;
}

/** setTimeout holds at most 2^31-1 ms (24.8 days); a longer wait is re-armed when it ends. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class AgentLoop {
  private readonly reconciler: Reconciler;
  /** What start set up, undone by stop; a promise: stop waits for it (a child process to exit). */
  private readonly disposers: Array<() => void | Promise<void>> = [];
  private passRunning: Promise<void> | undefined;
  private wakeAgain = false;
  private stopping = false;
  private started = false;
  private wakeReasons = new Set<string>();
  /** performance.now() of the first wake not yet taken by a pass: the signal its actions react to. */
  private wokeAt: number | undefined;
  private hostNet: HostNetWatchSwitch | undefined;
  /** When the last pass that finished (planned and dispatched) ended; undefined before the first. */
  private lastPass: Date | undefined;
  /** The one requeue timer: set for the earliest requeueAt of the last pass, replaced by the next. */
  private requeue: NodeJS.Timeout | undefined;
  /** Health probes on their own timers: `agent run` only (start), not a one-shot pass. */
  private health: HealthMonitor | undefined;

  constructor(private readonly o: LoopOptions) {
    this.reconciler = new Reconciler({
      ...o,
      onActionSettled: () => this.wake('action finished'),
      onRuntimeAnswered: (k) => this.wake(`${k} runtime answers again`),
      health: () => this.health?.verdicts() ?? new Map(),
      onAction: (a, phase) => (phase === 'begin' ? this.health?.hold(a.workload) : this.health?.release(a.workload)),
    });
  }

  /** One pass, then wait for its actions. Returns how many actions failed, and how many `interrupt` cut short. */
  async once(): Promise<{ actions: number; failed: number; interrupted: number }> {
    const { dispatched } = await this.reconciler.pass();
    const outcomes = await Promise.all(dispatched);
    return { actions: outcomes.length, failed: outcomes.filter((o) => !o.ok).length, interrupted: outcomes.filter((o) => o.interrupted).length };
  }

  /**
   * The agent is stopping: nothing new is dispatched, and starts still waiting for their workload
   * to be ready are rolled back (see Executor.shutdown). What `once` awaits then ends soon.
   */
  interrupt(why: string): void {
    this.stopping = true;
    this.health?.stop();
    killProbes();
    this.reconciler.executor.shutdown(why);
    // A pass waiting on a runtime that hangs is cut short (its components become `unknown`).
    abortCommands('the agent is stopping', { readsOnly: true });
  }

  /** Read-only, for the local API: when the last pass ended. */
  lastPassAt(): Date | undefined {
    return this.lastPass;
  }

  /** Read-only, for the local API: status and plan from the registry now and the live view (no listing). */
  assessNow(): Assessed {
    return this.reconciler.assessNow();
  }

  /** Read-only, for the local API: each runtime's listing state in the live view. */
  viewNow(): Partial<Record<RuntimeKind, RuntimeSnapshot>> {
    return this.reconciler.viewNow();
  }

  start(): void {
    this.started = true;
    const { registry, runtimes, config, log } = this.o;
    let version = registry.dataVersion();
    const checkRegistry = (): void => {
      const v = registry.dataVersion();
      if (v !== version) {
        version = v;
        this.wake('registry changed');
      }
    };
    // The file watch notices a commit at once; the poll stays, for when the watch cannot be had.
    const poll = setInterval(checkRegistry, config.registry_poll_ms);
    this.disposers.push(() => clearInterval(poll));
    const watchRegistry = this.o.watchRegistry ?? watchRegistryFiles;
    const onError = (err: Error): void => {
      log.warn({ db: registry.path, err: err.message }, `cannot watch the registry's files: commits by others are noticed by polling every ${config.registry_poll_ms} ms`);
    };
    this.disposers.push(watchRegistry(registry.path, checkRegistry, { onError }));

    for (const rt of runtimes.values()) {
      // An event updates the live view; a pass runs only when it changed what the agent knows.
      this.disposers.push(
        rt.watch((e) => {
          const news = this.reconciler.noteEvent(e);
          const what = e.gap ? `${e.runtime}: ${e.why}` : `${e.runtime} ${e.workload} ${e.status}`;
          log.debug({ event: what, at: e.gap ? undefined : e.at, news }, 'runtime event');
          if (news) this.wake(what);
        }),
      );
    }
    // VMs depend on the host's bridge, TAPs and isolation rules: a change there (a firewall reload
    // that flushed the rules, a bridge deleted) wakes a pass at once, not at the next resync.
    // The monitors run only while a VM could use the bridge: each pass switches them (runPasses).
    if (runtimes.has('unikernel')) {
      const hostNet = new HostNetWatchSwitch({ bridge: config.net.bridge, table: config.net.table, agentId: registry.meta.agentId(), onChange: (why) => {
        this.reconciler.bridgeChanged();
        this.wake(why);
      } });
      this.hostNet = hostNet;
      this.disposers.push(() => hostNet.close());
    }
    this.health = createHealthMonitor({ config, registry, runtimes, log, metrics: this.o.metrics, onChange: (why) => this.wake(why) });
    const job = CronJob.from({ cronTime: config.resync, onTick: () => this.resync('scheduled resync'), start: true });
    this.disposers.push(() => void job.stop());
    this.o.service?.start({ passRunning: () => this.passRunning !== undefined, wake: (why) => this.wake(why) });
    log.info({ db: registry.path, resync: config.resync, pid: process.pid }, 'agent started');
    this.wake('agent start');
  }

  /** A full resync now: every runtime listed again and the bridge looked at, then a pass. */
  resync(why: string): void {
    this.reconciler.relist(why);
    this.wake(why);
  }

  wake(reason: string): void {
    if (this.stopping || !this.started) return;
    this.wakeReasons.add(reason);
    this.wokeAt ??= performance.now();
    if (this.passRunning) {
      this.wakeAgain = true;
      return;
    }
    this.passRunning = this.runPasses().finally(() => (this.passRunning = undefined));
  }

  /** Resolves once no pass is running or asked for. */
  async idle(): Promise<void> {
    while (this.passRunning) await this.passRunning;
  }

  private async runPasses(): Promise<void> {
    do {
      // Wakes that arrive in the same turn of the event loop (several podman events read in one
      // chunk, a file watch and the poll) collapse into this pass: setImmediate runs once the
      // events already read are handled, and costs no time when there are none, where a timer would
      // add its whole delay to every reaction. Wakes that arrive during the pass collapse into
      // exactly one more (wakeAgain), so a burst costs at most one extra pass whatever its length.
      await new Promise((r) => setImmediate(r));
      this.wakeAgain = false;
      const reasons = [...this.wakeReasons];
      const wokeAt = this.wokeAt;
      this.wakeReasons.clear();
      this.wokeAt = undefined;
      this.o.log.debug({ reasons }, 'wake');
      try {
        const { result, report } = await this.reconciler.pass({ wokeAt });
        // The desired state the pass planned with says whether a VM could use the bridge.
        if (!this.stopping) this.hostNet?.follow(result.desired);
        if (!this.stopping) this.health?.sync(healthTargets(result, this.o.registry.leases.all()));
        this.requeueAt(result.requeueAt);
        this.lastPass = new Date();
        // READY=1 after the first, STATUS= as the counts change, WATCHDOG=1 only while passes complete.
        if (!this.stopping) this.o.service?.passDone(report);
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'reconcile pass failed');
      }
    } while (this.wakeAgain && !this.stopping);
  }

  /**
   * Sets the one requeue timer for `at` (a backoff ending, a workload becoming stable), replacing
   * the last one; none when nothing is due. A timer may end a little before `at` by the wall clock
   * (timers run on the loop's cached monotonic time): it then waits for the rest, so the pass it
   * wakes plans at or after `at` and does not find the backoff still running.
   */
  private requeueAt(at: Date | undefined): void {
    clearTimeout(this.requeue);
    this.requeue = undefined;
    if (!at || this.stopping) return;
    const arm = (): void => {
      const left = at.getTime() - Date.now();
      if (left <= 0) {
        this.requeue = undefined;
        this.wake('requeue');
        return;
      }
      this.requeue = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
      this.requeue.unref();
    };
    arm();
  }

  /**
   * Stops waking and dispatching; VM starts still booting are rolled back at once (a boot may take
   * up to boot_timeout, longer than any stop should), other actions under way finish (bounded).
   * Leaves every running workload running.
   */
  async stop(why = 'stop', timeoutMs = 30_000): Promise<void> {
    this.o.service?.stopping(why);
    this.interrupt(why);
    const disposed = Promise.all(this.disposers.splice(0).map((d) => d()));
    await this.passRunning;
    clearTimeout(this.requeue);
    await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    // Whatever command is still running after the drain is killed, and its action given 2 s to end.
    if (abortCommands('the agent is stopping') > 0) await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.o.registry.meta.delete('heartbeat');
    await disposed;
    await this.o.service?.close();
    this.o.log.info('agent stopped; workloads left running');
  }
}
