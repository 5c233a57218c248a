/**
 * The driver of readiness and the watchdog (service-notify.ts decides, this runs it): the loop
 * reports each completed pass, a timer ticks every pingEveryMs, and what NotifyPolicy returns goes
 * to the ServiceNotifier. Only `agent run` under a notify service builds one; otherwise the loop
 * has none and pays nothing.
 */
import type { PassReport } from './metrics-sink.js';
import { NotifyPolicy, type NotifyEnv, type ServiceNotifier } from './service-notify.js';

/** What the watch needs from the loop. */
export interface WatchedLoop {
  /** Whether a pass is under way (or asked for and about to run). */
  passRunning(): boolean;
  /** Asks for a pass (an idle loop proves it still works by running one). */
  wake(why: string): void;
}

export class ServiceWatch {
  private readonly policy: NotifyPolicy;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly env: NotifyEnv,
    private readonly notifier: ServiceNotifier,
  ) {
    this.policy = new NotifyPolicy(env.pingEveryMs !== undefined);
  }

  start(loop: WatchedLoop): void {
    if (this.env.pingEveryMs === undefined) return;
    // Not unref'd: while the agent runs, this timer is what proves it alive.
    this.timer = setInterval(() => {
      const t = this.policy.tick(loop.passRunning());
      if (t.send) this.notifier.send(t.send);
      if (t.wake) loop.wake('watchdog');
    }, this.env.pingEveryMs);
  }

  passDone(r: PassReport): void {
    const m = this.policy.passDone(r);
    if (m) this.notifier.send(m);
  }

  /** STOPPING=1 and the reason as STATUS; no more pings. */
  stopping(why: string): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.notifier.send(this.policy.stopping(why));
  }

  /** Waits (bounded) for what is still being sent. */
  close(): Promise<void> {
    clearInterval(this.timer);
    return this.notifier.close();
  }
}
