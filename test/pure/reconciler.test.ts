// Reconciler.pass with fake runtimes, a fake HostNet and a real registry file in a temp dir: one
// shape per pass (observe → plan → execute). The housekeeping the planner decides is performed by
// the executor and written to the events log; the isolation repair is an event, written once per
// failure; a VM start goes on the network the plan chose from the pass's one bridge fact; and a
// component in flux is left alone by actions and housekeeping alike.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import pino from 'pino';
import { Reconciler } from '../../src/agent/reconciler.js';
import { ConfigSchema } from '../../src/config/config.js';
import { specHash } from '../../src/identity.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';
import { Registry } from '../../src/registry/index.js';
import type { WorkloadSpec } from '../../src/runtime/types.js';
import { FakeHostNet } from '../helpers/fake-host-net.js';
import { FakeRuntime, gate } from '../helpers/fake-runtime.js';
import { observedFor, serviceSpec, spec } from '../helpers/spec.js';

const root = mkdtempSync(join(tmpdir(), 'agent-reconciler-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

interface Harness {
  reconciler: Reconciler;
  registry: Registry;
  containers: FakeRuntime;
  vms: FakeRuntime;
  host: FakeHostNet;
  /** What each VM start was given (its placement). */
  vmStarts: WorkloadSpec[];
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    await h.reconciler.executor.drain();
    h.registry.close();
  }
});

function harness(host: FakeHostNet, seed: (r: Registry) => void = () => undefined): Harness {
  const dir = join(root, `n${++n}`);
  mkdirSync(join(dir, 'images'), { recursive: true });
  writeFileSync(join(dir, 'images', 'id_ed25519'), 'not a real key: placement only checks it can be read\n');
  const db = join(dir, 'agent.db');
  const registry = Registry.open(db, { create: true });
  seed(registry);
  const containers = new FakeRuntime('container');
  const vms = new FakeRuntime('unikernel');
  const vmStarts: WorkloadSpec[] = [];
  vms.hooks.start = (w) => void vmStarts.push(w);
  const config = ConfigSchema.parse({ db, stable_after_seconds: 1 });
  const runtimes = new Map([['container', containers], ['unikernel', vms]] as const);
  const reconciler = new Reconciler({ registry, runtimes: new Map(runtimes), hostNet: host, config, log: pino({ level: 'silent' }) });
  const h = { reconciler, registry, containers, vms, host, vmStarts };
  open.push(h);
  return h;
}

/** One pass, and every action it dispatched finished. */
async function pass(h: Harness) {
  const r = await h.reconciler.pass();
  const outcomes = await Promise.all(r.dispatched);
  return { ...r, outcomes };
}

const events = (r: Registry, action?: string) => r.events.recent(1000).filter((e) => action === undefined || e.action === action);
const vm = (name: string, over: Partial<ComponentSpec> = {}): ComponentSpec => spec('web', name, { runtime: 'unikernel', memory: 128, cmd: [], kernel: 'vmlinux', ssh_host_key: 'ssh-ed25519 AAAAC3Nza', ...over });
const keyOf = (s: ComponentSpec) => ({ service: s.service, component: s.name });

describe('Reconciler.pass: housekeeping', () => {
  const api = spec('web', 'api');
  const box = vm('box');

  it('is performed by the executor and written to the events log, once', async () => {
    const h = harness(new FakeHostNet({ bridge: 'mcp-br0' }), (r) => {
      r.desired.apply([serviceSpec('web', [api, box])]);
      // api runs, stable, with failures counted: its count is reset
      r.instances.recordAdopted({ workload: 'web-api', ...keyOf(api), runtime: 'container', handle: 'id-web-api', specHash: specHash(api), startedAt: null });
      r.instances.recordFailure('web-api', { ...keyOf(api), runtime: 'container' }, { failures: 2, nextAttemptAt: '2024-05-01T11:00:00.000Z', error: 'boom', specHash: 'x' });
      // box runs on the bridge, its lease row lost: taken back
      r.instances.recordAdopted({ workload: 'web-box', ...keyOf(box), runtime: 'unikernel', handle: 'pid:42', specHash: specHash(box), startedAt: null });
      // a lease and a record nobody stands for: given back, forgotten
      r.leases.take('ip', '10.99.0.77', { service: 'gone', component: 'ghost' }, 'bridge');
      r.instances.recordFailure('gone-old', { service: 'gone', component: 'old', runtime: 'container' }, { failures: 3, nextAttemptAt: '2024-05-01T11:00:00.000Z', error: 'boom', specHash: 'x' });
    });
    h.containers.workloads.set('web-api', observedFor(api));
    h.vms.workloads.set('web-box', observedFor(box, { id: 'pid:42', network: 'bridge', address: '10.99.0.3' }));
    let collected = 0;
    Object.assign(h.vms, { collectGarbage: async () => (collected++, ['tap-ghost']) });

    const first = await pass(h);
    assert.deepEqual(first.outcomes, [], 'nothing to start or stop');
    assert.deepEqual(first.result.housekeeping.map((x) => `${x.type}:${'workload' in x ? x.workload : 'lease' in x ? x.lease.value : 'runtime' in x ? x.runtime : x.bridge}`).sort(), [
      'collect-garbage:container', 'collect-garbage:unikernel', 'forget-instance:gone-old', 'release-lease:10.99.0.77', 'reset-failures:web-api', 'retake-lease:web-box',
    ]);
    const { registry } = h;
    assert.equal(registry.instances.all().find((i) => i.workload === 'web-api')?.failures, 0);
    assert.deepEqual(registry.leases.all().map((l) => `${l.value} ${l.service}/${l.component}`), ['10.99.0.3 web/box']);
    assert.deepEqual(registry.instances.all().map((i) => i.workload).sort(), ['web-api', 'web-box']);
    assert.equal(collected, 1);
    const logged = events(registry).map((e) => `${e.action} ${e.workload} ${e.outcome}: ${e.message}`).sort();
    assert.deepEqual(logged, [
      'collect-garbage unikernel ok: freed tap-ghost',
      'forget-instance gone-old ok: forgot its record',
      'release-lease gone-ghost ok: released ip 10.99.0.77 (bridge)',
      'reset-failures web-api ok: failure count reset',
      'retake-lease web-box ok: re-took ip 10.99.0.3',
    ]);

    // The next pass reads the live view (no full listing): nothing left to do, nothing written.
    const second = await pass(h);
    assert.deepEqual(second.result.housekeeping, []);
    assert.equal(events(registry).length, logged.length);
    assert.equal(collected, 1, 'garbage is looked for only on a full listing');
  });

  it('a component in flux is left alone: no second action, its lease and record kept', async () => {
    const h = harness(new FakeHostNet(), (r) => r.desired.apply([serviceSpec('web', [api])]));
    const held = gate();
    h.containers.hooks.start = () => held.promise;
    const first = await h.reconciler.pass();
    assert.equal(first.dispatched.length, 1, 'the start of web-api is under way');
    // meanwhile its service is deleted, and it holds a lease and a record
    h.registry.desired.delete('web');
    h.registry.leases.take('host_port', '40000', keyOf(api), 'ssh');
    h.registry.instances.recordFailure('web-api', { ...keyOf(api), runtime: 'container' }, { failures: 1, nextAttemptAt: '2024-05-01T11:00:00.000Z', error: 'boom', specHash: 'x' });

    const during = await h.reconciler.pass();
    assert.deepEqual(during.dispatched, []);
    assert.deepEqual(during.result.actions, [], 'planned for when its start has ended');
    assert.deepEqual(during.result.housekeeping, []);
    assert.deepEqual(h.registry.leases.all().map((l) => l.value), ['40000']);
    assert.ok(h.registry.instances.all().some((i) => i.workload === 'web-api'));
    held.open();
    await Promise.all(first.dispatched);

    // once idle, it is judged again: not desired, so it goes, and its lease with it
    const later = await pass(h);
    assert.deepEqual(later.outcomes.map((o) => `${o.action.type} ${o.action.workload} ${o.ok}`), ['remove web-api true']);
    assert.deepEqual(h.registry.leases.all(), []);
  });
});

describe('Reconciler.pass: isolation repair and the network of a VM start', () => {
  const auto = vm('auto');
  const pinned = vm('pinned', { network: 'bridge' });

  it('rules missing: loaded again before the VM start, which goes on the bridge; one event', async () => {
    const host = new FakeHostNet({ bridge: 'mcp-br0', rules: false });
    const h = harness(host, (r) => r.desired.apply([serviceSpec('web', [auto])]));
    let rulesAtStart: boolean | undefined;
    h.vms.hooks.start = (w) => {
      h.vmStarts.push(w);
      rulesAtStart = host.bridges.get('mcp-br0')?.rules;
    };
    const first = await pass(h);
    assert.deepEqual(first.outcomes.map((o) => o.ok), [true]);
    assert.equal(h.vmStarts[0]?.vm?.net.mode, 'bridge');
    assert.equal(rulesAtStart, true, 'the rules were in place before the VM started');
    assert.deepEqual(h.registry.leases.all().map((l) => `${l.component} ${l.kind} ${l.value}`), ['auto ip 10.99.0.2']);
    assert.deepEqual(events(h.registry, 'isolate').map((e) => [e.workload, e.outcome, e.message, e.reason]), [
      ['mcp-br0', 'ok', 'reloaded (tables inet mcp, bridge mcp)', 'the isolation rules of the VM bridge were missing or changed'],
    ]);
    await pass(h);
    assert.equal(host.calls.filter((c) => c.startsWith('ensureRules')).length, 1, 'the kept fact says the rules are in place');
    assert.equal(events(h.registry, 'isolate').length, 1);
  });

  it('rules that cannot be loaded: auto goes on SLIRP, bridge fails naming why; the error is written once', async () => {
    const host = Object.assign(new FakeHostNet({ bridge: 'mcp-br0', rules: false }), { rulesFail: 'nft: table mcp is busy' });
    const h = harness(host, (r) => r.desired.apply([serviceSpec('web', [auto, pinned])]));
    const first = await pass(h);
    const outcome = (w: string) => first.outcomes.find((o) => o.action.workload === w)!;
    assert.equal(outcome('web-auto').ok, true);
    assert.equal(h.vmStarts.find((w) => w.name === 'web-auto')?.vm?.net.mode, 'slirp');
    assert.equal(outcome('web-pinned').ok, false);
    assert.match(outcome('web-pinned').message, /network 'bridge': the isolation rules of mcp-br0 are not in place and cannot be loaded: nft: table mcp is busy/);
    assert.ok(!h.vmStarts.some((w) => w.name === 'web-pinned'), 'nothing started for it');
    assert.deepEqual(h.registry.leases.all().map((l) => `${l.component} ${l.kind}`), ['auto host_port']);

    // the kept fact knows the rules do not load: not tried again until the bridge is looked at anew
    await pass(h);
    assert.equal(host.calls.filter((c) => c.startsWith('ensureRules')).length, 1);
    h.reconciler.relist('scheduled resync');
    await pass(h);
    assert.equal(host.calls.filter((c) => c.startsWith('ensureRules')).length, 2);
    assert.deepEqual(events(h.registry, 'isolate').map((e) => [e.outcome, e.message]), [['error', 'nft: table mcp is busy']], 'the same failure is written once');
  });

  it('ip cannot tell whether another agent uses the bridge: no VM goes on it (auto: SLIRP)', async () => {
    const host = new FakeHostNet({ bridge: 'mcp-br0' });
    const h = harness(host, (r) => r.desired.apply([serviceSpec('web', [auto])]));
    host.otherAgentsOnBridge = async () => {
      throw new Error('cannot list the ports of mcp-br0');
    };
    const first = await pass(h);
    assert.deepEqual(first.outcomes.map((o) => o.ok), [true]);
    assert.equal(h.vmStarts[0]?.vm?.net.mode, 'slirp');
    assert.deepEqual(events(h.registry, 'isolate'), []);
  });
});
