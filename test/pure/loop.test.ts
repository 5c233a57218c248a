// The loop's wake logic with a fake runtime and a real registry file in a temp dir: wakes
// coalesce, the one requeue timer wakes a pass when a backoff ends (not before, replaced and not
// stacked, cleared on stop), and a commit by another connection wakes a pass through the file
// watch, or through the poll when the watch cannot be had. Clocks are node:test's mock timers;
// nothing here asserts how long anything took.
import { FakeHostNet } from '../helpers/fake-host-net.js';
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it, mock } from 'node:test';
import pino from 'pino';
import { attemptHash } from '../../src/identity.js';
import { AgentLoop, type LoopOptions } from '../../src/agent/loop.js';
import { ConfigSchema } from '../../src/config/config.js';
import { watchRegistryFiles } from '../../src/registry/change-watch.js';
import { Registry } from '../../src/registry/index.js';
import { FakeRuntime, gate } from '../helpers/fake-runtime.js';
import { serviceSpec, spec } from '../helpers/spec.js';

const root = mkdtempSync(join(tmpdir(), 'agent-loop-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

const POLL_MS = 50;
const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const api = spec('web', 'api');

interface Harness {
  loop: AgentLoop;
  registry: Registry;
  runtime: FakeRuntime;
  db: string;
  /** The reasons of every wake that ran a pass, in order (from the loop's debug log). */
  passes: string[][];
  warnings: string[];
}

const open: Harness[] = [];
afterEach(async () => {
  mock.timers.reset();
  for (const h of open.splice(0)) {
    await h.loop.stop('test over', 1000);
    h.registry.close();
  }
});

/** A loop over a fresh registry (set up by `seed` before the loop starts) and one fake container runtime. */
function harness(seed: (r: Registry) => void = () => undefined, over: Partial<LoopOptions> = {}): Harness {
  const dir = join(root, `n${++n}`);
  const db = join(dir, 'agent.db');
  const registry = Registry.open(db, { create: true });
  seed(registry);
  const runtime = new FakeRuntime('container');
  const passes: string[][] = [];
  const warnings: string[] = [];
  const log = pino({ level: 'debug' }, {
    write: (line: string) => {
      const o = JSON.parse(line) as { msg: string; level: number; reasons?: string[] };
      if (o.msg === 'wake') passes.push(o.reasons ?? []);
      if (o.level === 40) warnings.push(o.msg);
    },
  });
  // A resync that never fires during a test: every pass comes from the wakes under test.
  const config = ConfigSchema.parse({ db, resync: '0 0 0 1 1 *', registry_poll_ms: POLL_MS });
  const loop = new AgentLoop({ registry, runtimes: new Map([['container', runtime]]), config, log, hostNet: new FakeHostNet(), ...over });
  const h = { loop, registry, runtime, db, passes, warnings };
  open.push(h);
  return h;
}

/** Lets everything the loop has in hand run to its end (passes, the actions they dispatched, their wakes). */
async function quiet(h: Harness): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await h.loop.idle();
    await new Promise((r) => setImmediate(r));
  }
}

/** Waits, in real time, for a condition that only an event outside the test's control brings (a file watch). */
async function until(what: string, cond: () => boolean, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('loop: wakes coalesce', () => {
  it('wakes in one turn of the event loop make one pass', async () => {
    const h = harness();
    h.loop.start();
    await quiet(h);
    assert.equal(h.passes.length, 1, 'the start pass');
    for (const why of ['a', 'b', 'c', 'd']) h.loop.wake(why);
    await quiet(h);
    assert.equal(h.passes.length, 2);
    assert.deepEqual(h.passes[1], ['a', 'b', 'c', 'd']);
  });

  it('a burst of wakes during a pass makes exactly one more pass', async () => {
    const h = harness();
    h.loop.start();
    await quiet(h);
    const listing = gate();
    h.runtime.hooks.list = () => listing.promise;
    h.loop.resync('first'); // a resync lists (a plain wake plans from the live view)
    await until('the pass to be listing', () => h.runtime.count('list') === 2);
    for (let i = 0; i < 20; i++) h.loop.wake(`during ${i}`);
    h.runtime.hooks.list = undefined;
    listing.open();
    await quiet(h);
    assert.equal(h.runtime.count('list'), 2, 'the extra pass plans from the live view: no listing of its own');
    assert.equal(h.passes.length, 3);
    assert.equal(h.passes[2]!.length, 20, 'the extra pass carries every reason');
  });

  it('a runtime event wakes a pass that restarts the workload', async () => {
    const h = harness((r) => r.desired.apply([serviceSpec('web', [api])]));
    h.loop.start();
    await quiet(h);
    assert.equal(h.runtime.count('start web-api'), 1);
    h.runtime.kill('web-api');
    await quiet(h);
    assert.equal(h.runtime.count('start web-api'), 2);
    assert.ok(h.passes.some((p) => p.includes('container web-api died')), JSON.stringify(h.passes));
  });
});

describe('loop: the requeue timer', () => {
  /** web/api desired, its last start failed, and it may be tried again at T0 + ms. */
  const backingOff = (ms: number) => (r: Registry): void => {
    r.desired.apply([serviceSpec('web', [api])]);
    setBackoff(r, ms);
  };
  const setBackoff = (r: Registry, ms: number): void => {
    const nextAttemptAt = new Date(T0 + ms).toISOString();
    r.instances.recordFailure('web-api', { service: 'web', component: 'api', runtime: 'container' }, { failures: 2, nextAttemptAt, error: 'boom', specHash: attemptHash(api) });
  };

  it('a component in backoff is retried when the backoff ends, not before', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const h = harness(backingOff(5_000));
    h.loop.start();
    await quiet(h);
    assert.equal(h.runtime.count('start web-api'), 0, 'held back');
    const passes = h.passes.length;
    mock.timers.tick(4_999);
    await quiet(h);
    assert.equal(h.passes.length, passes, 'no pass before the backoff ends');
    mock.timers.tick(1);
    await quiet(h);
    assert.deepEqual(h.passes[passes], ['requeue']);
    assert.equal(h.runtime.count('start web-api'), 1, 'retried');
  });

  it('the timer is replaced by each pass, not stacked, and cleared on stop', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const h = harness(backingOff(5_000));
    h.loop.start();
    await quiet(h);
    // The backoff moves later (same connection: no registry wake); the next pass re-arms for it.
    setBackoff(h.registry, 8_000);
    h.loop.wake('look again');
    await quiet(h);
    const passes = h.passes.length;
    mock.timers.tick(5_000);
    await quiet(h);
    assert.equal(h.passes.length, passes, 'the timer for the old backoff is gone');
    mock.timers.tick(3_000);
    await quiet(h);
    assert.deepEqual(h.passes.slice(passes, passes + 1), [['requeue']], 'exactly one requeue pass');
    assert.equal(h.runtime.count('start web-api'), 1);

    // A new backoff, then stop: the timer does not outlive the loop.
    setBackoff(h.registry, 20_000);
    h.runtime.workloads.clear();
    h.loop.wake('look again');
    await quiet(h);
    const before = h.passes.length;
    await h.loop.stop('test', 1000);
    mock.timers.tick(20_000);
    await quiet(h);
    assert.equal(h.passes.length, before);
  });

  it('a workload with failures is looked at again when it becomes stable, and its failures reset', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const h = harness((r) => r.desired.apply([serviceSpec('web', [api])]));
    h.loop.start();
    await quiet(h);
    setBackoff(h.registry, -1); // failed before, running now
    h.loop.wake('look again');
    await quiet(h);
    assert.equal(h.registry.instances.all()[0]?.failures, 2);
    mock.timers.tick(30_000); // stable_after_seconds
    await quiet(h);
    assert.deepEqual(h.passes.at(-1), ['requeue']);
    assert.equal(h.registry.instances.all()[0]?.failures, 0);
  });
});

describe('loop: a commit by another connection', () => {
  const commitElsewhere = (db: string): void => {
    const other = Registry.open(db);
    try {
      other.desired.apply([serviceSpec('web', [api])]);
    } finally {
      other.close();
    }
  };

  it('wakes a pass through the file watch (the poll is held still)', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const h = harness();
    h.loop.start();
    await quiet(h);
    commitElsewhere(h.db);
    await until('the component started', () => h.runtime.count('start web-api') === 1);
    assert.ok(h.passes.some((p) => p.includes('registry changed')), JSON.stringify(h.passes));
    assert.deepEqual(h.warnings, []);
  });

  it('without the watch, through the poll; the failure is told once and crashes nothing', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const h = harness(undefined, {
      watchRegistry: (_path, _onChange, o) => {
        o.onError(new Error('ENOSPC: System limit for number of file watchers reached'));
        return () => undefined;
      },
    });
    h.loop.start();
    await quiet(h);
    assert.equal(h.warnings.length, 1);
    assert.match(h.warnings[0]!, /cannot watch the registry's files: commits by others are noticed by polling every 50 ms/);
    commitElsewhere(h.db);
    await quiet(h);
    assert.equal(h.runtime.count('start web-api'), 0, 'nothing watches the files');
    mock.timers.tick(POLL_MS);
    await quiet(h);
    assert.equal(h.runtime.count('start web-api'), 1);
    assert.ok(h.passes.some((p) => p.includes('registry changed')), JSON.stringify(h.passes));
  });

  it('a watch that cannot be set up says so once and never throws', () => {
    const errors: Error[] = [];
    const close = watchRegistryFiles(join(root, 'no-such-dir', 'agent.db'), () => assert.fail('no change to notice'), { onError: (e) => errors.push(e) });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /ENOENT/);
    close();
    close();
  });
});
