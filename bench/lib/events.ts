/**
 * A benchmark's view of podman's own event log: one `podman events --format json` stream, kept
 * for the whole run, whose events carry podman's timestamp (`Time`, nanoseconds). Figures taken
 * from it are podman's clock, not the moment our process happened to read the line.
 * Invariant: only events whose container name starts with one of `prefixes` are kept (other
 * helpers run podman at the same time); the stream is a child the ChildTracker can end by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import type { ChildTracker } from './children.js';

export interface PodmanEvent {
  name: string;
  status: string;
  /** podman's timestamp, epoch milliseconds with the nanoseconds kept as a fraction. */
  at: number;
  exitCode: number | undefined;
}

/** Epoch milliseconds, sub-millisecond, from the monotonic clock (comparable with podman's Time). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** "2026-11-29T19:45:04.65791172Z" -> epoch ms with the fraction (Date.parse keeps only ms). */
export function parsePodmanTime(t: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) throw new Error(`unexpected podman event time ${t}`);
  const whole = Date.parse(`${m[1]}${m[3]}`);
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return whole + frac;
}

interface Waiter {
  match: (e: PodmanEvent) => boolean;
  resolve: (e: PodmanEvent) => void;
}

export class PodmanEventTap {
  private readonly events: PodmanEvent[] = [];
  private readonly waiters = new Set<Waiter>();
  private child: ChildProcess | undefined;

  constructor(private readonly prefixes: string[]) {}

  /** Starts the stream and resolves once podman answers (a probe container's event is not needed: a short wait). */
  async start(children: ChildTracker, env: NodeJS.ProcessEnv): Promise<void> {
    const child = spawn('podman', ['events', '--format', 'json', '--filter', 'type=container'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    children.track(child);
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    // podman events opens its log and starts to follow it within ~100-200 ms here.
    await new Promise((r) => setTimeout(r, 1000));
    if (child.exitCode !== null) throw new Error(`podman events exited at once (${child.exitCode})`);
  }

  private onLine(line: string): void {
    let raw: { Name?: string; Status?: string; Time?: string; ContainerExitCode?: number };
    try {
      raw = JSON.parse(line) as typeof raw;
    } catch {
      return;
    }
    if (!raw.Name || !raw.Status || !raw.Time) return;
    if (!this.prefixes.some((p) => raw.Name!.startsWith(p))) return;
    const e: PodmanEvent = { name: raw.Name, status: raw.Status, at: parsePodmanTime(raw.Time), exitCode: raw.ContainerExitCode };
    this.events.push(e);
    for (const w of this.waiters) {
      if (w.match(e)) {
        this.waiters.delete(w);
        w.resolve(e);
      }
    }
  }

  /**
   * The first event of `name` with `status` stamped at or after `since` (epoch ms): one already
   * seen, or the next to come. Rejects after `timeoutMs`.
   */
  next(name: string, status: string, since: number, timeoutMs = 60_000): Promise<PodmanEvent> {
    const match = (e: PodmanEvent): boolean => e.name === name && e.status === status && e.at >= since;
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`no podman '${status}' event of ${name} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const w: Waiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      this.waiters.add(w);
    });
  }

  /** Every event of `name` seen so far (in arrival order). */
  of(name: string): PodmanEvent[] {
    return this.events.filter((e) => e.name === name);
  }

  stop(): void {
    if (this.child?.pid !== undefined && this.child.exitCode === null) {
      try {
        process.kill(this.child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }
}
