// Drain through the agent's own parts with fake runtimes and a real registry file: the drain rows
// in the registry (kept across a reopen), the reconciler stopping every workload at most
// `parallelism` at a time and starting nothing while drained, the marks the stops leave, and the
// undrain starting what the drain stopped without counting a restart or a failure.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import pino from 'pino';
import { Reconciler } from '../../src/agent/reconciler.js';
import { ConfigSchema } from '../../src/config/config.js';
import { Registry } from '../../src/registry/index.js';
import { FakeHostNet } from '../helpers/fake-host-net.js';
import { FakeRuntime, gate } from '../helpers/fake-runtime.js';
import { serviceSpec, spec } from '../helpers/spec.js';

const root = mkdtempSync(join(tmpdir(), 'agent-drain-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function newDb(): string {
  const dir = join(root, `n${++n}`);
  mkdirSync(dir, { recursive: true });
  return join(dir, 'agent.db');
}

describe('the drain rows in the registry', () => {
  it('drain keeps the first drain time, undrain says what it ended, both survive a reopen', () => {
    const db = newDb();
    let r = Registry.open(db, { create: true });
    assert.equal(r.drain.state(), undefined);
    const first = r.drain.drain(new Date('2024-05-01T12:00:00.000Z'));
    assert.deepEqual(first, { state: { since: '2024-05-01T12:00:00.000Z' }, already: false });
    assert.deepEqual(r.drain.drain(new Date('2024-05-01T13:00:00.000Z')), { state: { since: '2024-05-01T12:00:00.000Z' }, already: true });
    r.drain.markStopped('web-a', new Date());
    r.close();
    r = Registry.open(db);
    assert.deepEqual(r.drain.state(), { since: '2024-05-01T12:00:00.000Z' });
    assert.deepEqual([...r.drain.stoppedByDrain()], ['web-a']);
    assert.deepEqual(r.drain.undrain(), { since: '2024-05-01T12:00:00.000Z' });
    assert.equal(r.drain.undrain(), undefined);
    assert.deepEqual([...r.drain.stoppedByDrain()], ['web-a'], 'the marks outlive the undrain');
    r.drain.unmark('web-a');
    assert.deepEqual([...r.drain.stoppedByDrain()], []);
    r.close();
  });
});

describe('the reconciler on a drained node', () => {
  function harness(parallelism: number) {
    const db = newDb();
    const registry = Registry.open(db, { create: true });
    const containers = new FakeRuntime('container');
    const config = ConfigSchema.parse({ db, parallelism });
    const reconciler = new Reconciler({ registry, runtimes: new Map([['container', containers]]), hostNet: new FakeHostNet(), config, log: pino({ level: 'silent' }) });
    cleanups.push(async () => {
      await reconciler.executor.drain();
      registry.close();
    });
    const pass = async () => {
      const r = await reconciler.pass();
      return { ...r, outcomes: await Promise.all(r.dispatched) };
    };
    return { registry, containers, pass };
  }

  it('stops every workload at most `parallelism` at a time, starts nothing while drained, and undrain starts them again', async () => {
    const { registry, containers, pass } = harness(2);
    const comps = ['a', 'b', 'c'].map((c) => spec('web', c, { restart: c === 'a' ? 'never' : c === 'b' ? 'on-failure' : 'always' }));
    registry.desired.apply([serviceSpec('web', comps)]);
    await pass();
    assert.deepEqual([...containers.workloads.values()].map((w) => w.state), ['running', 'running', 'running']);

    registry.drain.drain(new Date());
    let inStop = 0;
    let most = 0;
    const release = gate();
    containers.hooks.stop = async () => {
      most = Math.max(most, ++inStop);
      await release.promise;
      inStop--;
    };
    const stopping = pass();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(inStop, 2, 'two stops under way, the third waits for a slot');
    release.open();
    const drained = await stopping;
    assert.deepEqual(drained.outcomes.map((o) => `${o.action.type} ${o.action.workload} ${o.ok}`), ['stop web-a true', 'stop web-b true', 'stop web-c true']);
    assert.equal(most, 2);
    assert.deepEqual([...containers.workloads.values()].map((w) => w.state), ['exited', 'exited', 'exited'], 'kept, not removed');
    assert.deepEqual([...registry.drain.stoppedByDrain()].sort(), ['web-a', 'web-b', 'web-c']);

    // Passes while drained start nothing, whatever the restart policies say.
    for (let i = 0; i < 3; i++) {
      const p = await pass();
      assert.deepEqual(p.outcomes, []);
      assert.ok(p.result.assessments.every((x) => x.drift === 'drained' && x.reason === 'stopped (drained)'), JSON.stringify(p.result.assessments));
    }
    assert.equal(containers.calls.filter((c) => c.startsWith('start')).length, 3, 'only the first three starts');
    assert.equal(registry.desired.read().components.length, 3, 'the desired state is untouched');

    registry.drain.undrain();
    const back = await pass();
    assert.deepEqual(back.outcomes.map((o) => `${o.action.type} ${o.action.workload}`), ['start web-a', 'start web-b', 'start web-c']);
    assert.deepEqual([...containers.workloads.values()].map((w) => w.state), ['running', 'running', 'running']);
    assert.deepEqual([...registry.drain.stoppedByDrain()], [], 'marks cleared by the starts');
    assert.ok(registry.instances.all().every((i) => i.restarts === 0 && i.failures === 0), 'a drain is no failure');
    const quiet = await pass();
    assert.deepEqual(quiet.outcomes, []);
  });

  it('a stop that fails leaves no mark, and the next pass tries again', async () => {
    const { registry, containers, pass } = harness(4);
    registry.desired.apply([serviceSpec('web', [spec('web', 'a')])]);
    await pass();
    registry.drain.drain(new Date());
    containers.hooks.stop = () => {
      throw new Error('podman stop: boom');
    };
    const failed = await pass();
    assert.equal(failed.outcomes[0]?.ok, false);
    assert.deepEqual([...registry.drain.stoppedByDrain()], []);
    containers.hooks.stop = undefined;
    const again = await pass();
    assert.deepEqual(again.outcomes.map((o) => `${o.action.type} ${o.ok}`), ['stop true']);
    assert.deepEqual([...registry.drain.stoppedByDrain()], ['web-a']);
  });
});
