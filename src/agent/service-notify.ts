/**
 * Readiness and watchdog for the agent as a systemd service (`Type=notify`), the pure part: what
 * the environment systemd gave says (sd_notify's rules), the one-line STATUS summary of a pass, and
 * when to send READY=1, STATUS= and WATCHDOG=1. No I/O and no clock of its own: the driver
 * (service-watch.ts) feeds it passes and ticks, and a ServiceNotifier adapter sends what it returns.
 *
 * The watchdog invariant: WATCHDOG=1 is sent only when a reconcile pass has completed since the
 * last tick (or, on an idle loop, when the pass a tick asked for completes). A loop stuck in a pass
 * (a runtime call that hangs, a promise that never settles) stops pinging, and so does a blocked
 * event loop or a stopped process (no tick runs): systemd's WatchdogSec= then restarts the agent.
 */
import { DRIFTS, type PassReport } from './metrics-sink.js';

/** The sd_notify fields the agent sends (systemd's names). */
export interface NotifyMessage {
  READY?: '1';
  STOPPING?: '1';
  WATCHDOG?: '1';
  STATUS?: string;
}

/** Sends sd_notify messages to the service manager; never throws (a lost message is logged). */
export interface ServiceNotifier {
  send(message: NotifyMessage): void;
  /** Waits (bounded) for messages under way, so STOPPING=1 reaches systemd before the agent exits. */
  close(): Promise<void>;
}

/** What systemd asked for: where to send, and how often to ping (undefined: no watchdog). */
export interface NotifyEnv {
  socket: string;
  /** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends. */
  pingEveryMs: number | undefined;
}

/** The variables systemd sets for a notify service; the agent takes them out of its own environment. */
export const NOTIFY_VARIABLES = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/**
 * sd_notify's rules: no NOTIFY_SOCKET, nothing to do. The watchdog is on when WATCHDOG_USEC is a
 * positive integer and WATCHDOG_PID, when set, is this process (a variable inherited from a parent
 * service is not ours).
 */
export function notifyEnv(env: Readonly<Record<string, string | undefined>>, pid: number): NotifyEnv | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return undefined;
  const usec = /^\d+$/.test(env.WATCHDOG_USEC ?? '') ? Number(env.WATCHDOG_USEC) : 0;
  const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || env.WATCHDOG_PID === String(pid);
  return { socket, pingEveryMs: usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : undefined };
}

/** The message as systemd reads it: one VARIABLE=VALUE a line. STATUS is one line. */
export function notifyLines(m: NotifyMessage): string[] {
  const lines: string[] = [];
  if (m.READY) lines.push('READY=1');
  if (m.STOPPING) lines.push('STOPPING=1');
  if (m.STATUS !== undefined) lines.push(`STATUS=${m.STATUS.replace(/\s*\n\s*/g, ' ')}`);
  if (m.WATCHDOG) lines.push('WATCHDOG=1');
  return lines;
}

/** Two messages as one (what a slow sender still holds, and the next): flags stay, the newest STATUS wins. */
export function mergeMessages(a: NotifyMessage | undefined, b: NotifyMessage): NotifyMessage {
  return { ...a, ...b, STATUS: b.STATUS ?? a?.STATUS };
}

const DRIFT_WORDS: Partial<Record<(typeof DRIFTS)[number], string>> = { 'in-sync': 'in sync', 'spec-changed': 'spec changed' };

/**
 * The pass in one line, from the counts the metrics gauges get: "12 in sync, 1 missing, 1 backing
 * off", then the runtimes that could not list ("; container runtime not listing").
 */
export function statusLine(r: PassReport): string {
  const byDrift = new Map<string, number>();
  for (const w of r.workloads) byDrift.set(w.drift, (byDrift.get(w.drift) ?? 0) + w.count);
  const parts = DRIFTS.filter((d) => (byDrift.get(d) ?? 0) > 0).map((d) => `${byDrift.get(d)} ${DRIFT_WORDS[d] ?? d}`);
  if (r.backoff > 0) parts.push(`${r.backoff} backing off`);
  const down = Object.entries(r.runtimesUp).filter(([, up]) => up === false).map(([kind]) => `${kind} runtime not listing`);
  return [parts.length > 0 ? parts.join(', ') : 'no workloads', ...down].join('; ');
}

/**
 * What to send when. `passDone` after each completed pass, `tick` every pingEveryMs (when the
 * watchdog is on), `stopping` once. Each returns the message to send, or undefined.
 */
export class NotifyPolicy {
  private ready = false;
  private lastStatus: string | undefined;
  /** A pass completed since the last tick. */
  private completed = false;
  /** A tick could not ping: the next completed pass pings at once. */
  private owed = false;
  private stopped = false;

  constructor(private readonly watchdog: boolean) {}

  /** A pass completed: READY=1 the first time, STATUS= when the summary changed, WATCHDOG=1 when a tick is owed one. */
  passDone(r: PassReport): NotifyMessage | undefined {
    if (this.stopped) return undefined;
    const m: NotifyMessage = {};
    if (!this.ready) m.READY = '1';
    this.ready = true;
    const status = statusLine(r);
    if (status !== this.lastStatus) m.STATUS = status;
    this.lastStatus = status;
    this.completed = true;
    if (this.watchdog && this.owed) {
      m.WATCHDOG = '1';
      this.owed = false;
      this.completed = false;
    }
    return Object.keys(m).length > 0 ? m : undefined;
  }

  /**
   * The watchdog's tick. A pass completed since the last one: ping. Otherwise no ping now, the next
   * completed pass pings, and when no pass is running one is asked for (`wake`): an idle loop
   * proves itself by running a pass; a loop stuck in one stays silent.
   */
  tick(passRunning: boolean): { send?: NotifyMessage; wake?: boolean } {
    if (!this.watchdog || !this.ready || this.stopped) return {};
    if (this.completed) {
      this.completed = false;
      this.owed = false;
      return { send: { WATCHDOG: '1' } };
    }
    this.owed = true;
    return passRunning ? {} : { wake: true };
  }

  /** The agent is stopping: no more pings (systemd stops the watchdog on STOPPING=1). */
  stopping(why: string): NotifyMessage {
    this.stopped = true;
    return { STOPPING: '1', STATUS: `stopping (${why}): finishing actions under way, workloads keep running` };
  }
}
