/**
 * The health monitor of `agent run`: probes each target on its own timer (every interval_seconds,
 * measured from the end of its last probe, so a workload never has two probes at once), at most
 * `parallelism` probes across workloads at a time, outside the reconcile pass. Results stay in
 * memory; a change of status (or of the failure count) is written to the workload's instances
 * row, a change of status is also an event and wakes the loop (`onChange`), whose next pass plans
 * the restart. While an action is under way on a workload (`hold`) it is not probed; after it
 * (`release`) its health starts over, and a probe begun before is dropped (generations).
 */
import type { Logger } from 'pino';
import { canonicalJson } from '../../identity.js';
import type { Registry } from '../../registry/index.js';
import type { MetricsSink } from '../metrics-sink.js';
import { afterProbe, initialState, type TrackState } from './tracker.js';
import type { HealthTarget } from './targets.js';
import type { Prober } from './probe.js';
import type { HealthVerdict } from './verdict.js';

export interface HealthMonitorOptions {
  registry: Registry;
  prober: Prober;
  parallelism: number;
  log: Logger;
  metrics?: MetricsSink | undefined;
  /** A workload's status changed: the loop should plan again. */
  onChange: (why: string) => void;
  now?: () => number;
}

interface Entry {
  target: HealthTarget;
  /** canonical JSON of the check: a changed check starts over. */
  checkJson: string;
  state: TrackState;
  gen: number;
  timer: NodeJS.Timeout | undefined;
  busy: boolean;
  held: boolean;
  gone: boolean;
}

export class HealthMonitor {
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Array<() => void> = [];
  private running = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly o: HealthMonitorOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The targets of the last pass: new ones are probed at once, gone ones dropped, a new run or check starts over. */
  sync(targets: HealthTarget[]): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const t of targets) {
      seen.add(t.workload);
      const checkJson = canonicalJson(t.check);
      const e = this.entries.get(t.workload);
      if (e && e.target.handle === t.handle && e.checkJson === checkJson) {
        e.target = t; // a VM's endpoint may have moved (bridge ⇄ slirp)
        continue;
      }
      if (e) this.drop(e);
      const entry: Entry = { target: t, checkJson, state: initialState(this.now()), gen: 0, timer: undefined, busy: false, held: false, gone: false };
      this.entries.set(t.workload, entry);
      this.store(entry);
      this.schedule(entry, 0);
    }
    for (const [w, e] of this.entries) if (!seen.has(w) && !e.held) this.drop(e);
  }

  /** An action begins on the workload: no probe until `release`. */
  hold(workload: string): void {
    const e = this.entries.get(workload);
    if (!e) return;
    e.held = true;
    e.gen++;
    clearTimeout(e.timer);
  }

  /** The action ended: health starts over (the next pass's sync gives the new run, if any). */
  release(workload: string): void {
    const e = this.entries.get(workload);
    if (!e) return;
    this.drop(e);
  }

  verdicts(): ReadonlyMap<string, HealthVerdict> {
    const out = new Map<string, HealthVerdict>();
    for (const [w, e] of this.entries) {
      const s = e.state;
      out.set(w, { status: s.status, output: s.output, run: e.target.handle, since: new Date(s.since).toISOString(), failures: s.failures });
    }
    return out;
  }

  unhealthyCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.state.status === 'unhealthy') n++;
    return n;
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) this.drop(e);
    this.queue.length = 0;
  }

  private drop(e: Entry): void {
    // What the prober keeps for the run (a shell holding its network namespace open) goes with it.
    if (!e.gone) this.o.prober.forget(e.target.handle);
    e.gone = true;
    e.gen++;
    clearTimeout(e.timer);
    if (this.entries.get(e.target.workload) === e) this.entries.delete(e.target.workload);
  }

  private schedule(e: Entry, delayMs: number): void {
    if (e.gone || e.held || this.stopped) return;
    e.timer = setTimeout(() => void this.probe(e), delayMs);
    e.timer.unref();
  }

  private async slot(): Promise<void> {
    if (this.running >= this.o.parallelism) await new Promise<void>((r) => this.queue.push(r));
    this.running++;
  }

  private free(): void {
    this.running--;
    this.queue.shift()?.();
  }

  private async probe(e: Entry): Promise<void> {
    if (e.busy || e.gone || e.held) return;
    e.busy = true;
    const gen = e.gen;
    await this.slot();
    const began = this.now();
    try {
      if (e.gen !== gen || this.stopped) return;
      const r = await this.o.prober.probe(e.target);
      if (e.gen !== gen || this.stopped) return; // the run changed under the probe: its result says nothing now
      this.o.metrics?.healthChecked?.(r.ok ? 'success' : 'failure', (this.now() - began) / 1000);
      const before = e.state;
      const step = afterProbe(before, r, e.target.check, e.target.startedAt ?? began, this.now());
      e.state = step.state;
      if (step.changed || (step.counted && step.state.failures !== before.failures) || (r.ok && before.failures > 0)) this.store(e);
      if (step.changed) this.transition(e, before.status);
      this.o.metrics?.unhealthyWorkloads?.(this.unhealthyCount());
    } finally {
      this.free();
      e.busy = false;
      const interval = e.target.check.interval_seconds * 1000;
      if (e.gen === gen) this.schedule(e, Math.max(0, interval - (this.now() - began)));
    }
  }

  private store(e: Entry): void {
    const s = e.state;
    this.o.registry.instances.recordHealth(e.target.workload, {
      status: s.status,
      failures: s.failures,
      output: s.output.slice(0, 500),
      checkedAt: new Date(s.checkedAt ?? s.since).toISOString(),
      since: new Date(s.since).toISOString(),
      run: e.target.handle,
    });
  }

  private transition(e: Entry, from: string): void {
    const t = e.target;
    const to = e.state.status;
    this.o.registry.events.append({
      service: t.key.service,
      component: t.key.component,
      workload: t.workload,
      action: 'health',
      reason: `${from} → ${to}`,
      outcome: to === 'unhealthy' ? 'error' : 'info',
      message: `${t.check.kind} check: ${e.state.output}`.slice(0, 1000),
    });
    const line = `${t.workload} is ${to} (${t.check.kind} check: ${e.state.output})`;
    if (to === 'unhealthy') this.o.log.warn({ workload: t.workload, health: to }, line);
    else this.o.log.info({ workload: t.workload, health: to }, line);
    this.o.onChange(`health: ${t.workload} ${to}`);
  }
}
