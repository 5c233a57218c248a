// The health monitor with a fake prober (probes that end when the test says): at most
// `parallelism` probes at once, never two of one workload, transitions written to the registry
// (instances row, one event each) and waking the loop; a held workload is not probed, and its
// health starts over after the action.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from '../../src/registry/index.js';
import { HealthMonitor } from '../../src/agent/health/monitor.js';
import { HealthSchema } from '../../src/manifest/health-schema.js';
import type { Prober, ProbeResult, ProbeTarget } from '../../src/agent/health/probe.js';
import type { HealthTarget } from '../../src/agent/health/targets.js';

const root = mkdtempSync(join(tmpdir(), 'agent-health-monitor-'));
after(() => rmSync(root, { recursive: true, force: true }));

class GatedProber implements Prober {
  running = new Map<string, number>();
  maxAtOnce = 0;
  maxPerWorkload = 0;
  forgotten: string[] = [];
  private gates: Array<() => void> = [];
  constructor(public result: (t: ProbeTarget) => ProbeResult) {}
  async probe(t: ProbeTarget): Promise<ProbeResult> {
    this.running.set(t.workload, (this.running.get(t.workload) ?? 0) + 1);
    const total = [...this.running.values()].reduce((a, b) => a + b, 0);
    this.maxAtOnce = Math.max(this.maxAtOnce, total);
    this.maxPerWorkload = Math.max(this.maxPerWorkload, this.running.get(t.workload)!);
    await new Promise<void>((r) => this.gates.push(r));
    this.running.set(t.workload, this.running.get(t.workload)! - 1);
    return this.result(t);
  }
  forget(handle: string): void {
    this.forgotten.push(handle);
  }
  /** Ends every probe under way. */
  open(): number {
    const g = this.gates.splice(0);
    g.forEach((r) => r());
    return g.length;
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
const check = HealthSchema().parse({ kind: 'tcp', port: 80, interval_seconds: 1, failure_threshold: 2 });

function setup(n: number, parallelism: number, ok: (t: ProbeTarget) => boolean) {
  const registry = Registry.open(join(mkdtempSync(join(root, 'r-')), 'agent.db'), { create: true });
  const targets: HealthTarget[] = Array.from({ length: n }, (_, i) => {
    const workload = `web-c${i}`;
    registry.instances.recordStarted({ workload, service: 'web', component: `c${i}`, runtime: 'container', handle: `h${i}`, specHash: 'x', restarted: false });
    return { key: { service: 'web', component: `c${i}` }, workload, runtime: 'container', handle: `h${i}`, check, startedAt: 0 };
  });
  const prober = new GatedProber((t) => ({ ok: ok(t), output: ok(t) ? 'connected' : 'refused' }));
  const woken: string[] = [];
  let now = 1_000_000;
  const monitor = new HealthMonitor({ registry, prober, parallelism, log: pino({ level: 'silent' }), onChange: (why) => woken.push(why), now: () => (now += 1000) });
  return { registry, targets, prober, woken, monitor };
}

describe('health monitor', () => {
  it('probes at most `parallelism` at once and one per workload', async () => {
    const { targets, prober, monitor, registry } = setup(6, 2, () => true);
    monitor.sync(targets);
    for (let round = 0; round < 4; round++) {
      await tick();
      prober.open();
    }
    monitor.stop();
    prober.open();
    assert.equal(prober.maxAtOnce, 2);
    assert.equal(prober.maxPerWorkload, 1);
    registry.close();
  });

  it('writes transitions to the instances row and the events log, and wakes the loop', async () => {
    const { targets, prober, monitor, registry, woken } = setup(1, 4, () => false);
    monitor.sync(targets);
    // interval 1 s: the second probe comes a second after the first ended; run both through
    for (let i = 0; i < 2; i++) {
      await waitUntil(() => prober.running.get('web-c0') === 1);
      prober.open();
      if (i === 0) await tick();
    }
    await waitUntil(() => monitor.verdicts().get('web-c0')?.status === 'unhealthy', 3000);
    const v = monitor.verdicts().get('web-c0')!;
    assert.equal(v.failures, 2);
    assert.equal(v.run, 'h0');
    assert.deepEqual(woken, ['health: web-c0 unhealthy']);
    const row = registry.instances.all()[0]!.health!;
    assert.equal(row.status, 'unhealthy');
    assert.equal(row.output, 'refused');
    const ev = registry.events.latestPerComponent().get('web/c0')!;
    assert.equal(ev.action, 'health');
    assert.equal(ev.reason, 'starting → unhealthy');
    // an action on it: no probe while held, and its health starts over afterwards
    monitor.hold('web-c0');
    monitor.release('web-c0');
    assert.equal(monitor.verdicts().has('web-c0'), false);
    assert.ok(prober.forgotten.includes('h0'));
    monitor.sync(targets);
    assert.equal(monitor.verdicts().get('web-c0')?.status, 'starting');
    monitor.stop();
    prober.open();
    registry.close();
  });
});

async function waitUntil(f: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await tick();
  }
}
