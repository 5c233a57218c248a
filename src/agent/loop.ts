/**
 * The agent's main loop. Wakes on: a commit to the registry by another connection (a master's
 * push, polled through PRAGMA data_version), a runtime event (a container died), a change of the
 * host's VM networking (nft and ip monitors), an action that finished (to verify it), and the
 * cron-scheduled full resync. Wakes coalesce: one pass at a time,
 * and a wake during a pass causes exactly one more.
 */
import { CronJob } from 'cron';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Registry } from '../registry/index.js';
import type { Runtime } from '../runtime/types.js';
import { Reconciler } from './reconciler.js';
import { HostNetWatchSwitch } from '../net/watch.js';
import type { HostNet } from '../net/types.js';
import { abortCommands } from '../runtime/command.js';

export interface LoopOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
  hostNet: HostNet;
  config: AgentConfig;
  log: Logger;
}

export class AgentLoop {
  private readonly reconciler: Reconciler;
  private readonly disposers: Array<() => void> = [];
  private passRunning: Promise<void> | undefined;
  private wakeAgain = false;
  private stopping = false;
  private started = false;
  private wakeReasons = new Set<string>();
  private hostNet: HostNetWatchSwitch | undefined;

  constructor(private readonly o: LoopOptions) {
    this.reconciler = new Reconciler({ ...o, onActionSettled: () => this.wake('action finished'), onRuntimeAnswered: (k) => this.wake(`${k} runtime answers again`) });
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
    this.reconciler.executor.shutdown(why);
    // A pass waiting on a runtime that hangs is cut short (its components become `unknown`).
    abortCommands('the agent is stopping', { readsOnly: true });
  }

  start(): void {
    this.started = true;
    const { registry, runtimes, config, log } = this.o;
    let version = registry.dataVersion();
    const poll = setInterval(() => {
      const v = registry.dataVersion();
      if (v !== version) {
        version = v;
        this.wake('registry changed');
      }
    }, config.registry_poll_ms);
    this.disposers.push(() => clearInterval(poll));

    for (const rt of runtimes.values()) {
      this.disposers.push(rt.watch((e) => this.wake(`${e.runtime} ${e.workload} ${e.status}`)));
    }
    // VMs depend on the host's bridge, TAPs and isolation rules: a change there (a firewall reload
    // that flushed the rules, a bridge deleted) wakes a pass at once, not at the next resync.
    // The monitors run only while a VM could use the bridge: each pass switches them (runPasses).
    if (runtimes.has('unikernel')) {
      const hostNet = new HostNetWatchSwitch({ bridge: config.net.bridge, table: config.net.table, agentId: registry.meta.agentId(), onChange: (why) => this.wake(why) });
      this.hostNet = hostNet;
      this.disposers.push(() => hostNet.follow(undefined));
    }
    const job = CronJob.from({ cronTime: config.resync, onTick: () => this.wake('scheduled resync'), start: true });
    this.disposers.push(() => void job.stop());
    log.info({ db: registry.path, resync: config.resync, pid: process.pid }, 'agent started');
    this.wake('agent start');
  }

  wake(reason: string): void {
    if (this.stopping || !this.started) return;
    this.wakeReasons.add(reason);
    if (this.passRunning) {
      this.wakeAgain = true;
      return;
    }
    this.passRunning = this.runPasses().finally(() => (this.passRunning = undefined));
  }

  private async runPasses(): Promise<void> {
    do {
      this.wakeAgain = false;
      // Let a burst of wakes (several podman events for one container) collapse into one pass.
      await new Promise((r) => setTimeout(r, 25));
      const reasons = [...this.wakeReasons];
      this.wakeReasons.clear();
      this.o.log.debug({ reasons }, 'wake');
      try {
        const { result } = await this.reconciler.pass();
        // The desired state the pass planned with says whether a VM could use the bridge.
        if (!this.stopping) this.hostNet?.follow(result.desired);
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'reconcile pass failed');
      }
    } while (this.wakeAgain && !this.stopping);
  }

  /**
   * Stops waking and dispatching; VM starts still booting are rolled back at once (a boot may take
   * up to boot_timeout, longer than any stop should), other actions under way finish (bounded).
   * Leaves every running workload running.
   */
  async stop(why = 'stop', timeoutMs = 30_000): Promise<void> {
    this.interrupt(why);
    for (const d of this.disposers.splice(0)) d();
    await this.passRunning;
    await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    // Whatever command is still running after the drain is killed, and its action given 2 s to end.
    if (abortCommands('the agent is stopping') > 0) await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.o.registry.meta.delete('heartbeat');
    this.o.log.info('agent stopped; workloads left running');
  }
}
