// The executor with a fake runtime and a real registry file in a temp dir: what it dispatches, one
// action at a time per component within a bounded parallelism, failures counted into the backoff
// the planner honours, every action in the events log, and shutdown rolling back what waits.
import { FakeHostNet } from '../helpers/fake-host-net.js';
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it, mock } from 'node:test';
import pino from 'pino';
import { Executor, type ExecutorOptions } from '../../src/agent/executor.js';
import { attemptHash, specHash, workloadName } from '../../src/identity.js';
import type { Action } from '../../src/agent/planner.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';
import { Registry } from '../../src/registry/index.js';
import { FakeRuntime, gate } from '../helpers/fake-runtime.js';
import { spec } from '../helpers/spec.js';

const root = mkdtempSync(join(tmpdir(), 'agent-executor-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const BACKOFF = { baseMs: 1000, maxMs: 60_000 };

const registries: Registry[] = [];
afterEach(() => {
  mock.timers.reset();
  for (const r of registries.splice(0)) r.close();
});

function setup(over: Partial<ExecutorOptions> = {}): { executor: Executor; registry: Registry; runtime: FakeRuntime; settled: number[] } {
  const dir = join(root, `n${++n}`);
  const registry = Registry.open(join(dir, 'agent.db'), { create: true });
  registries.push(registry);
  const runtime = new FakeRuntime('container');
  const settled: number[] = [];
  const executor = new Executor({
    registry,
    runtimes: new Map([['container', runtime]]),
    agentId: registry.meta.agentId(),
    backoff: BACKOFF,
    stopGraceSeconds: 1,
    parallelism: 4,
    vmPaths: { home: dir, vmDir: join(dir, 'vm'), imagesDirs: [join(dir, 'images')], sshKey: join(dir, 'images/id_ed25519') },
    net: { bridge: { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' }, subnet: '10.99.0.0/24', host: new FakeHostNet() },
    log: pino({ level: 'silent' }),
    onSettled: () => settled.push(Date.now()),
    ...over,
  });
  return { executor, registry, runtime, settled };
}

const keyOf = (s: ComponentSpec) => ({ service: s.service, component: s.name });
const startOf = (s: ComponentSpec, type: 'start' | 'restart' | 'replace' = 'start', reason = 'missing'): Action =>
  ({ type, key: keyOf(s), workload: workloadName(keyOf(s)), runtime: s.runtime, spec: s, specHash: specHash(s), reason });
const removeOf = (s: ComponentSpec): Action => ({ type: 'remove', key: keyOf(s), workload: workloadName(keyOf(s)), runtime: s.runtime, reason: 'service is inactive' });

const a = spec('web', 'a');
const b = spec('web', 'b');

describe('executor: dispatch', () => {
  it('starts a workload with its labels, records it, logs intent and outcome, and tells the loop', async () => {
    const { executor, registry, runtime, settled } = setup();
    const [p] = executor.dispatch([startOf(a)]);
    const outcome = await p!;
    assert.equal(outcome.ok, true);
    assert.match(outcome.message, /^started fake-1/);
    const w = runtime.workloads.get('web-a');
    assert.equal(w?.specHash, specHash(a));
    assert.deepEqual(w?.key, keyOf(a));
    const rec = registry.instances.all().find((i) => i.workload === 'web-a');
    assert.equal(rec?.handle, 'fake-1');
    assert.equal(rec?.failures, 0);
    const [ev] = registry.events.recent(10);
    assert.equal(ev?.action, 'start');
    assert.equal(ev?.outcome, 'ok');
    assert.equal(settled.length, 1);
  });

  it('removes: stops, removes, forgets the record', async () => {
    const { executor, registry, runtime } = setup();
    await executor.dispatch([startOf(a)])[0];
    const outcome = await executor.dispatch([removeOf(a)])[0]!;
    assert.equal(outcome.ok, true);
    assert.equal(outcome.message, 'stopped, removed');
    assert.deepEqual(runtime.calls.filter((c) => c !== 'list'), ['start web-a', 'stop web-a', 'remove web-a']);
    assert.equal(registry.instances.all().length, 0);
  });

  it('one action at a time per component; a busy component holds up no other', async () => {
    const { executor, runtime } = setup();
    const held = gate();
    runtime.hooks.start = (w) => (w.name === 'web-a' ? held.promise : undefined);
    const first = executor.dispatch([startOf(a)]);
    assert.equal(first.length, 1);
    assert.equal(executor.isBusy(startOf(a)), true);
    assert.deepEqual(executor.dispatch([startOf(a, 'replace'), startOf(b)]).length, 1, 'only b is dispatched');
    assert.deepEqual([...executor.busyUnits()].sort(), ['web/a', 'web/b']);
    const drained = await Promise.race([executor.drain().then(() => true), new Promise((r) => setImmediate(() => r(false)))]);
    assert.equal(drained, false, 'drain waits for a');
    held.open();
    await executor.drain();
    assert.deepEqual([...executor.busyUnits()], []);
    assert.equal(runtime.count('start web-a'), 1, 'the replace was not queued behind the start');
  });

  it('never more than `parallelism` actions at once', async () => {
    const { executor, runtime } = setup({ parallelism: 1 });
    const held = gate();
    runtime.hooks.start = () => held.promise;
    const all = executor.dispatch([startOf(a), startOf(b)]);
    assert.equal(all.length, 2, 'both dispatched');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(runtime.calls, ['start web-a'], 'b waits for a slot');
    held.open();
    await Promise.all(all);
    assert.deepEqual(runtime.calls, ['start web-a', 'start web-b']);
  });
});

describe('executor: failures feed the backoff', () => {
  it('a failed start counts one failure of that spec, with next_attempt_at doubling', async () => {
    mock.timers.enable({ apis: ['Date'], now: T0 });
    const { executor, registry, runtime } = setup();
    runtime.hooks.start = () => {
      throw new Error('image not found: localhost/busybox:1');
    };
    for (const [failures, delay] of [[1, 1000], [2, 2000], [3, 4000]] as const) {
      const outcome = await executor.dispatch([startOf(a)])[0]!;
      assert.equal(outcome.ok, false);
      const rec = registry.instances.all().find((i) => i.workload === 'web-a');
      assert.equal(rec?.failures, failures);
      assert.equal(rec?.nextAttemptAt, new Date(T0 + delay).toISOString());
      assert.equal(rec?.lastError, 'image not found: localhost/busybox:1');
      assert.equal(rec?.failedSpecHash, attemptHash(a));
    }
    assert.equal(runtime.workloads.size, 0, 'nothing half-started stays');
    assert.deepEqual(registry.events.recent(3).map((e) => e.outcome), ['error', 'error', 'error']);
  });

  it('a changed spec starts counting from zero', async () => {
    const { executor, registry, runtime } = setup();
    runtime.hooks.start = () => {
      throw new Error('boom');
    };
    await executor.dispatch([startOf(a)])[0];
    await executor.dispatch([startOf(a)])[0];
    await executor.dispatch([startOf({ ...a, image: 'localhost/fixed:2' })])[0];
    assert.equal(registry.instances.all()[0]?.failures, 1);
  });

  it('a restart is a failure of the component even when it succeeds (a crash loop backs off)', async () => {
    const { executor, registry } = setup();
    const outcome = await executor.dispatch([startOf(a, 'restart', 'exited (code 1), restart policy always')])[0]!;
    assert.equal(outcome.ok, true);
    assert.match(outcome.message, /^restarted/);
    const rec = registry.instances.all()[0];
    assert.equal(rec?.failures, 1);
    assert.ok(rec?.nextAttemptAt);
  });

  it('a failure of the bookkeeping is an outcome, never an unhandled rejection', async () => {
    const { executor, registry } = setup();
    registry.close(); // every registry call now throws
    const outcome = await executor.dispatch([startOf(a)])[0]!;
    assert.equal(outcome.ok, false);
    assert.match(outcome.message, /database connection is not open/);
  });

  it('an action on a runtime that is not configured fails with a clear message', async () => {
    const { executor, registry } = setup({ runtimes: new Map() });
    const outcome = await executor.dispatch([removeOf(a)])[0]!;
    assert.equal(outcome.ok, false);
    assert.equal(outcome.message, 'no container runtime configured');
    assert.equal((await executor.dispatch([startOf(a)])[0]!).message, 'no container runtime configured');
    assert.equal(registry.instances.all()[0]?.failures, 1, 'a start that cannot be made counts towards the backoff');
  });
});

describe('executor: shutdown', () => {
  it('rolls back a start still waiting, counts no failure, and dispatches nothing more', async () => {
    const { executor, registry, runtime } = setup();
    runtime.hooks.start = (w) =>
      new Promise<void>((_, reject) => w.signal?.addEventListener('abort', () => reject(w.signal!.reason as Error), { once: true }));
    const [p] = executor.dispatch([startOf(a)]);
    await new Promise((r) => setImmediate(r));
    executor.shutdown('SIGTERM');
    executor.shutdown('SIGTERM again'); // idempotent
    const outcome = await p!;
    assert.equal(outcome.interrupted, true);
    assert.match(outcome.message, /rolled back: the agent is stopping \(SIGTERM\)/);
    assert.equal(registry.instances.failuresFor('web-a', attemptHash(a)), 0);
    assert.equal(registry.events.recent(1)[0]?.outcome, 'interrupted');
    assert.deepEqual(executor.dispatch([startOf(b)]), []);
    assert.equal(runtime.count('start web-b'), 0);
  });

  it('an action queued for a slot when the agent stops is never started', async () => {
    const { executor, runtime } = setup({ parallelism: 1 });
    const held = gate();
    runtime.hooks.start = () => held.promise;
    const [pa, pb] = executor.dispatch([startOf(a), startOf(b)]);
    await new Promise((r) => setImmediate(r));
    executor.shutdown('stop');
    held.open();
    assert.equal((await pa!).ok, true, 'a short start may finish');
    const outcome = await pb!;
    assert.equal(outcome.interrupted, true);
    assert.equal(outcome.message, 'not started: the agent is stopping');
    assert.equal(runtime.count('start web-b'), 0);
  });
});
