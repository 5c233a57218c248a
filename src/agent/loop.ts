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
import { watchHostNet } from '../net/watch.js';
import { abortCommands } from '../runtime/command.js';

export interface LoopOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
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

  constructor(private readonly o: LoopOptions) {
    this.reconciler = new Reconciler({ ...o, onActionSettled: () => this.wake('action finished'), onRuntimeAnswered: (k) => this.wake(`${k} runtime answers again`) });
  }

  /** One pass, then wait for its actions. Returns how many actions failed. */
  async once(): Promise<{ actions: number; failed: number }> {
    const { dispatched } = await this.reconciler.pass();
    const outcomes = await Promise.all(dispatched);
    return { actions: outcomes.length, failed: outcomes.filter((o) => !o.ok).length };
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
    if (runtimes.has('unikernel')) {
      this.disposers.push(watchHostNet({ bridge: config.net.bridge, table: config.net.table, agentId: registry.meta.agentId(), onChange: (why) => this.wake(why) }));
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
        await this.reconciler.pass();
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'reconcile pass failed');
      }
    } while (this.wakeAgain && !this.stopping);
  }

  /** Stops waking, lets actions under way finish (bounded), leaves every workload running. */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    for (const d of this.disposers.splice(0)) d();
    // A pass waiting on a runtime that hangs is cut short; then whatever child is left is killed.
    abortCommands('the agent is stopping', { readsOnly: true });
    await this.passRunning;
    await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    if (abortCommands('the agent is stopping') > 0) await Promise.race([this.reconciler.executor.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.o.registry.meta.delete('heartbeat');
    this.o.log.info('agent stopped; workloads left running');
  }
}
