// The agent's metrics without podman or QEMU: the `metrics_listen` setting, a pass's report, the
// exposition AgentMetrics writes (read back with a strict parser), and the loop feeding it from a
// fake runtime (a start, then a death and its restart). Nothing here asserts how long anything took.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { register as globalRegister } from 'prom-client';
import { AgentLoop } from '../../src/agent/loop.js';
import { AgentMetrics, REACTION_BUCKETS } from '../../src/agent/metrics.js';
import { passReport, type PassReport } from '../../src/agent/metrics-sink.js';
import { ConfigSchema, loadConfig, parseListen } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { Registry } from '../../src/registry/index.js';
import { FakeHostNet } from '../helpers/fake-host-net.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { parseExposition, sampleValue } from '../helpers/prom-text.js';
import { assessment, serviceSpec, spec } from '../helpers/spec.js';

const root = mkdtempSync(join(tmpdir(), 'agent-metrics-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('metrics_listen', () => {
  it('takes IP:PORT, IPv6 in brackets, port 0', () => {
    assert.deepEqual(parseListen('127.0.0.1:9469'), { host: '127.0.0.1', port: 9469 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('0.0.0.0:65535'), { host: '0.0.0.0', port: 65535 });
  });

  it('refuses names, missing or out-of-range ports, bad addresses', () => {
    for (const bad of ['localhost:9469', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '256.0.0.1:80', ':9469', '::1:9469', '[::1]', '[127.0.0.1]:80', ' 127.0.0.1:80', 'http://127.0.0.1:80']) {
      assert.equal(parseListen(bad), undefined, bad);
    }
  });

  it('defaults to loopback; "" turns it off; a bad value is a ValidationError naming the setting', () => {
    assert.equal(ConfigSchema.parse({}).metrics_listen, '127.0.0.1:9469');
    assert.equal(ConfigSchema.parse({ metrics_listen: '' }).metrics_listen, '');
    let caught: unknown;
    try {
      loadConfig({ configPath: undefined, env: { AGENT_METRICS_LISTEN: 'localhost:80' }, flags: {}, cwd: root });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ValidationError, String(caught));
    assert.equal(caught.issues[0]?.field, 'metrics_listen');
    assert.match(caught.issues[0]!.rule, /IP:PORT/);
  });

  it('AGENT_METRICS_LISTEN="" overrides the file (off)', () => {
    assert.equal(loadConfig({ configPath: undefined, env: { AGENT_METRICS_LISTEN: '' }, flags: {}, cwd: root }).metrics_listen, '');
  });
});


describe('passReport', () => {
  it('counts components by runtime and drift, backoffs, runtimes up, leases by kind', () => {
    const r = passReport(
      {
        assessments: [
          assessment({}),
          assessment({ workload: 'web-db' }),
          assessment({ drift: 'missing', backoffUntil: '2030-01-01T00:00:00Z' }),
          assessment({ runtime: 'unikernel', drift: 'unknown' }),
          assessment({ runtime: undefined, drift: 'invalid' }),
        ],
        listings: { container: { ok: true, items: [] }, unikernel: { ok: false, error: 'qemu gone' } },
        leases: [{ kind: 'host_port', value: '2222', service: 'vm', component: 'a', purpose: 'ssh' }],
      },
      0.004,
      new Date(1_700_000_000_000),
    );
    const count = (runtime: string, drift: string): number | undefined => r.workloads.find((w) => w.runtime === runtime && w.drift === drift)?.count;
    assert.equal(count('container', 'in-sync'), 2);
    assert.equal(count('container', 'missing'), 1);
    assert.equal(count('unikernel', 'unknown'), 1);
    assert.equal(count('none', 'invalid'), 1);
    assert.equal(r.backoff, 1);
    assert.deepEqual(r.runtimesUp, { container: true, unikernel: false });
    assert.deepEqual(r.leases, { ip: 0, host_port: 1 });
  });
});

const report = (over: Partial<PassReport> = {}): PassReport => ({
  seconds: 0.003,
  endedAt: new Date(1_700_000_000_500),
  workloads: [{ runtime: 'container', drift: 'in-sync', count: 3 }],
  backoff: 0,
  runtimesUp: { container: true, unikernel: false },
  leases: { ip: 2, host_port: 1 },
  ...over,
});

describe('AgentMetrics: the exposition', () => {
  it('names every metric with HELP and TYPE, and the default process metrics', async () => {
    const m = new AgentMetrics();
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
    const f = parseExposition(await m.text());
    const want: Record<string, string> = {
      mcp_agent_workloads: 'gauge',
      mcp_agent_reconcile_duration_seconds: 'histogram',
      mcp_agent_actions_total: 'counter',
      mcp_agent_reaction_seconds: 'histogram',
      mcp_agent_restarts_total: 'counter',
      mcp_agent_backoff_workloads: 'gauge',
      mcp_agent_runtime_up: 'gauge',
      mcp_agent_vm_boot_seconds: 'histogram',
      mcp_agent_leases: 'gauge',
      mcp_agent_last_pass_timestamp_seconds: 'gauge',
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
    };
    for (const [name, type] of Object.entries(want)) {
      assert.equal(f.get(name)?.type, type, name);
      assert.ok(f.get(name)?.help, `${name} has HELP`);
    }
    // Before any pass: counters at 0 for every label set, no pass yet.
    assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'restart', outcome: 'failed' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_restarts_total', { runtime: 'unikernel' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_last_pass_timestamp_seconds'), 0);
  });

  it('keeps its own registry: nothing lands in prom-client\'s global one, two instances do not share', async () => {
    const a = new AgentMetrics();
    const b = new AgentMetrics();
    a.actionDone('start', 'container', 'ok');
    assert.equal(sampleValue(parseExposition(await b.text()), 'mcp_agent_actions_total', { action: 'start', outcome: 'ok' }), 0);
    assert.equal(sampleValue(parseExposition(await a.text()), 'mcp_agent_actions_total', { action: 'start', outcome: 'ok' }), 1);
    assert.equal(globalRegister.getSingleMetric('mcp_agent_actions_total'), undefined);
  });

  it('a 3 ms reaction lands in the 5 ms bucket, not the 2.5 ms one', async () => {
    const m = new AgentMetrics();
    m.reacted(0.003);
    const f = parseExposition(await m.text());
    assert.ok(REACTION_BUCKETS.includes(0.0025) && REACTION_BUCKETS.includes(0.005));
    assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_bucket', { le: '0.0025' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_bucket', { le: '0.005' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_bucket', { le: '+Inf' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_count'), 1);
  });

  it('a VM boot of 4.2 s lands in the 5 s bucket', async () => {
    const m = new AgentMetrics();
    m.vmBooted(4.2);
    const f = parseExposition(await m.text());
    assert.equal(sampleValue(f, 'mcp_agent_vm_boot_seconds_bucket', { le: '4' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_vm_boot_seconds_bucket', { le: '5' }), 1);
  });

  it('state gauges show the last pass: every drift of each runtime (0 when none), runtimes up, leases, backoffs', async () => {
    const m = new AgentMetrics();
    m.passDone(report({ workloads: [{ runtime: 'container', drift: 'missing', count: 1 }], backoff: 1 }));
    m.passDone(report());
    const f = parseExposition(await m.text());
    assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'container', drift: 'in-sync' }), 3);
    assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'container', drift: 'missing' }), 0, 'the earlier pass is forgotten');
    assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'unikernel', drift: 'in-sync' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_backoff_workloads'), 0);
    assert.equal(sampleValue(f, 'mcp_agent_runtime_up', { runtime: 'container' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_runtime_up', { runtime: 'unikernel' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_leases', { kind: 'ip' }), 2);
    assert.equal(sampleValue(f, 'mcp_agent_last_pass_timestamp_seconds'), 1_700_000_000.5);
    assert.equal(sampleValue(f, 'mcp_agent_reconcile_duration_seconds_count'), 2);
  });

  it('a restart counts as a restart only when it succeeded', async () => {
    const m = new AgentMetrics();
    m.actionDone('restart', 'container', 'failed');
    m.actionDone('restart', 'container', 'ok');
    m.actionDone('start', 'container', 'ok');
    const f = parseExposition(await m.text());
    assert.equal(sampleValue(f, 'mcp_agent_restarts_total', { runtime: 'container' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'restart', outcome: 'failed' }), 1);
  });
});

describe('the loop feeds its metrics', () => {
  it('a start, then a death and its restart: passes, actions, reactions, restarts', async () => {
    const db = join(root, 'loop', 'agent.db');
    const registry = Registry.open(db, { create: true });
    registry.desired.apply([serviceSpec('web', [spec('web', 'api')])]);
    const runtime = new FakeRuntime('container');
    const metrics = new AgentMetrics();
    const config = ConfigSchema.parse({ db, resync: '0 0 0 1 1 *' });
    const loop = new AgentLoop({ registry, runtimes: new Map([['container', runtime]]), config, log: pino({ level: 'silent' }), hostNet: new FakeHostNet(), metrics });
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) {
        await loop.idle();
        await new Promise((r) => setImmediate(r));
      }
    };
    try {
      loop.start();
      await settle();
      let f = parseExposition(await metrics.text());
      assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'start', outcome: 'ok' }), 1);
      assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_count'), 1, 'the start reacted to the agent start');
      assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'container', drift: 'in-sync' }), 1);
      assert.ok(sampleValue(f, 'mcp_agent_last_pass_timestamp_seconds') > 0);

      runtime.kill('web-api');
      await settle();
      f = parseExposition(await metrics.text());
      assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'restart', outcome: 'ok' }), 1);
      assert.equal(sampleValue(f, 'mcp_agent_restarts_total', { runtime: 'container' }), 1);
      assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_count'), 2, 'the restart reacted to the death');
      assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'container', drift: 'in-sync' }), 1);
      assert.ok(sampleValue(f, 'mcp_agent_reconcile_duration_seconds_count') >= 3, 'start pass, its verification, the death');
    } finally {
      await loop.stop('test over', 1000);
      registry.close();
    }
  });

  it('run --once records nothing: no metrics object, no error', async () => {
    const db = join(root, 'once', 'agent.db');
    const registry = Registry.open(db, { create: true });
    registry.desired.apply([serviceSpec('web', [spec('web', 'api')])]);
    const config = ConfigSchema.parse({ db, resync: '0 0 0 1 1 *' });
    const loop = new AgentLoop({ registry, runtimes: new Map([['container', new FakeRuntime('container')]]), config, log: pino({ level: 'silent' }), hostNet: new FakeHostNet() });
    try {
      assert.deepEqual(await loop.once(), { actions: 1, failed: 0, interrupted: 0 });
    } finally {
      registry.close();
    }
  });
});
