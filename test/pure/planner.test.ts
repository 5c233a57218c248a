// plan(): a pure function of (desired, observed, instance records, now). No processes, no podman.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { plan, type Action, type Assessment, type PlanInput, type PlanResult, type RuntimeListing } from '../../src/agent/planner.js';
import { attemptHash, specHash } from '../../src/identity.js';
import { staleInstances } from '../../src/agent/stale-instances.js';
import type { ComponentSpec, RuntimeKind } from '../../src/manifest/schema.js';
import type { DesiredState, InstanceRecord } from '../../src/registry/index.js';
import type { Observed } from '../../src/runtime/types.js';
import { desired, failed, invalidRow, observedFor, ok, rawObserved, record, service, spec, validRow } from '../helpers/spec.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const STABLE_MS = 30_000;

// ---- input builders (shared ones in test/helpers/spec.ts) -----------------------------------

function input(d: DesiredState, observed: Partial<Record<RuntimeKind, RuntimeListing>>, instances: InstanceRecord[] = [], over: Partial<PlanInput> = {}): PlanInput {
  return { desired: d, observed, instances, now: NOW, stableAfterMs: STABLE_MS, ...over };
}

/** The single assessment for workload `w`; fails if there is not exactly one. */
function only(r: PlanResult, w: string): Assessment {
  const found = r.assessments.filter((a) => a.workload === w);
  assert.equal(found.length, 1, `expected exactly one assessment for ${w}, got ${found.length}: ${JSON.stringify(r.assessments)}`);
  return found[0]!;
}

const actionTypes = (r: PlanResult): string[] => r.actions.map((a) => `${a.type}:${a.workload}`);

/** The workloads whose failure count the plan resets (housekeeping). */
const settled = (r: PlanResult): string[] => r.housekeeping.flatMap((h) => (h.type === 'reset-failures' ? [h.workload] : []));

// ---- tests ----------------------------------------------------------------------------------

describe('plan: desired components against observed workloads', () => {
  it('starts a missing component', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)]), { container: ok() }));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'missing');
    assert.equal(a.observed, 'absent');
    assert.equal(a.desired, 'running');
    assert.equal(a.runtime, 'container');
    assert.deepEqual(a.key, { service: 'web', component: 'api' });
    assert.equal(r.actions.length, 1);
    const act = r.actions[0]!;
    assert.equal(act.type, 'start');
    assert.equal(act.workload, 'web-api');
    assert.equal(act.runtime, 'container');
    assert.ok(act.type === 'start');
    assert.equal(act.specHash, specHash(s));
    assert.deepEqual(act.spec, s);
    assert.deepEqual(act.key, { service: 'web', component: 'api' });
    assert.strictEqual(a.action, act);
  });

  it('leaves a running workload with the same hash and a matching record in sync, with no action', () => {
    const s = spec('web', 'api');
    const o = observedFor(s, { address: '10.0.0.5' });
    const r = plan(input(desired([validRow(s)]), { container: ok(o) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'in-sync');
    assert.equal(a.observed, 'running');
    assert.equal(a.reason, '');
    assert.equal(a.action, undefined);
    assert.equal(a.handle, o.id);
    assert.equal(a.address, '10.0.0.5');
    assert.deepEqual(r.actions, []);
    assert.deepEqual(settled(r), []);
  });

  it('adopts a running in-sync workload that has no instance record', () => {
    const s = spec('web', 'api');
    const o = observedFor(s);
    const r = plan(input(desired([validRow(s)]), { container: ok(o) }, []));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'in-sync');
    assert.deepEqual(r.actions, [
      { type: 'adopt', key: { service: 'web', component: 'api' }, workload: 'web-api', runtime: 'container', handle: o.id, specHash: specHash(s), startedFrom: s, startedAt: o.startedAt, reason: 'running, not yet recorded by this agent' },
    ] satisfies Action[]);
  });

  it('adopts a running in-sync workload whose recorded handle differs', () => {
    const s = spec('web', 'api');
    const o = observedFor(s, { id: 'new-id' });
    const r = plan(input(desired([validRow(s)]), { container: ok(o) }, [record(s, { handle: 'old-id' })]));
    assert.equal(only(r, 'web-api').drift, 'in-sync');
    assert.equal(r.actions.length, 1);
    const act = r.actions[0]!;
    assert.equal(act.type, 'adopt');
    assert.ok(act.type === 'adopt');
    assert.equal(act.handle, 'new-id');
  });

  it('replaces a workload running from another spec hash (its spec unknown: the hashes are named)', () => {
    const s = spec('web', 'api', { image: 'localhost/busybox:2' });
    const old = spec('web', 'api', { image: 'localhost/busybox:1' });
    const o = observedFor(s, { specHash: specHash(old) });
    const r = plan(input(desired([validRow(s)]), { container: ok(o) }, [record(old, { spec: null })]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'spec-changed');
    assert.match(a.reason, /spec changed/);
    assert.ok(a.reason.includes(specHash(old).slice(0, 12)), a.reason);
    assert.ok(a.reason.includes(specHash(s).slice(0, 12)), a.reason);
    assert.deepEqual(actionTypes(r), ['replace:web-api']);
    const act = r.actions[0]!;
    assert.ok(act.type === 'replace');
    assert.equal(act.specHash, specHash(s));
    assert.deepEqual(act.spec, s);
  });

  it('replaces a workload with no spec-hash label', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { specHash: undefined })) }));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'spec-changed');
    assert.match(a.reason, /unlabelled/);
    assert.deepEqual(actionTypes(r), ['replace:web-api']);
  });

  it('restarts an exited workload under restart policy always', () => {
    const s = spec('web', 'api', { restart: 'always' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'exited', exitCode: 0 })) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'stopped');
    assert.equal(a.observed, 'exited');
    assert.match(a.reason, /exited \(code 0\)/);
    assert.deepEqual(actionTypes(r), ['restart:web-api']);
    const act = r.actions[0]!;
    assert.ok(act.type === 'restart');
    assert.match(act.reason, /restart policy always/);
  });

  it('on-failure: exit 0 is drift exited with no action', () => {
    const s = spec('web', 'api', { restart: 'on-failure' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'exited', exitCode: 0 })) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'exited');
    assert.equal(a.action, undefined);
    assert.match(a.reason, /restart policy on-failure leaves it stopped/);
    assert.deepEqual(r.actions, []);
  });

  it('on-failure: exit 1 is restarted', () => {
    const s = spec('web', 'api', { restart: 'on-failure' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'exited', exitCode: 1 })) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'stopped');
    assert.match(a.reason, /exited \(code 1\)/);
    assert.deepEqual(actionTypes(r), ['restart:web-api']);
  });

  it('on-failure, VMs: a guest poweroff (exit 0) stays off; an unknown end is restarted; the reason says why', () => {
    const s = spec('edge', 'fw', { runtime: 'unikernel', restart: 'on-failure' });
    const off = plan(input(desired([validRow(s)]), { unikernel: ok(observedFor(s, { state: 'exited', exitCode: 0, exitReason: 'the guest powered itself off' })) }, [record(s)]));
    assert.equal(only(off, 'edge-fw').drift, 'exited');
    assert.match(only(off, 'edge-fw').reason, /VM not running: the guest powered itself off/);
    assert.deepEqual(off.actions, []);
    const lost = plan(input(desired([validRow(s)]), { unikernel: ok(observedFor(s, { state: 'exited', exitCode: undefined, exitReason: 'QEMU ended with no shutdown recorded' })) }, [record(s)]));
    assert.equal(only(lost, 'edge-fw').drift, 'stopped');
    assert.match(only(lost, 'edge-fw').reason, /no shutdown recorded/);
    assert.deepEqual(actionTypes(lost), ['restart:edge-fw']);
  });

  it('a running VM on the wrong network for the bridge now: drift network, replaced (and held back by its backoff)', () => {
    const s = spec('edge', 'fw', { runtime: 'unikernel', network: 'auto' });
    const on = (over: Partial<PlanInput>, rec = record(s)) => plan(input(desired([validRow(s)]), { unikernel: ok(observedFor(s, { network: 'slirp' })) }, [rec], over));
    const r = on({ bridge: { name: 'mcp-br0', present: true } });
    assert.equal(only(r, 'edge-fw').drift, 'network');
    assert.match(only(r, 'edge-fw').reason, /bridge mcp-br0 is there now, the VM runs on SLIRP/);
    assert.deepEqual(actionTypes(r), ['replace:edge-fw']);
    assert.deepEqual(actionTypes(on({ bridge: { name: 'mcp-br0', present: false } })), []);
    assert.equal(only(on({}), 'edge-fw').drift, 'in-sync', 'no bridge fact: not checked');
    const held = on({ bridge: { name: 'mcp-br0', present: true } }, record(s, { failures: 2, nextAttemptAt: '2024-05-01T12:05:00.000Z', failedSpecHash: attemptHash(s) }));
    assert.deepEqual(actionTypes(held), []);
    assert.match(only(held, 'edge-fw').reason, /backing off/);
  });

  it('never: an exited workload is left alone, whatever its exit code', () => {
    for (const exitCode of [0, 1, 137]) {
      const s = spec('web', 'api', { restart: 'never' });
      const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'exited', exitCode })) }, [record(s)]));
      const a = only(r, 'web-api');
      assert.equal(a.drift, 'exited', `exit ${exitCode}`);
      assert.match(a.reason, /restart policy never leaves it stopped/);
      assert.deepEqual(r.actions, [], `exit ${exitCode}`);
    }
  });

  it('a created-but-never-started workload is started again even under never', () => {
    const s = spec('web', 'api', { restart: 'never' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'created' })) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'stopped');
    assert.match(a.reason, /created but never started/);
    assert.deepEqual(actionTypes(r), ['restart:web-api']);
  });

  it('a workload in a transitional state is pending, with no action', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'stopping' })) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'pending');
    assert.equal(a.reason, 'workload is stopping');
    assert.deepEqual(r.actions, []);
  });
});

describe('plan: inactive services and orphans', () => {
  it('removes the running workload of an inactive service', () => {
    const s = spec('web', 'api');
    const o = observedFor(s);
    const r = plan(input(desired([validRow(s)], [service('web', false)]), { container: ok(o) }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.desired, 'absent');
    assert.equal(a.drift, 'orphan');
    assert.equal(a.reason, 'service is inactive');
    assert.deepEqual(r.actions, [{ type: 'remove', key: { service: 'web', component: 'api' }, workload: 'web-api', runtime: 'container', reason: 'service is inactive' }] satisfies Action[]);
  });

  it('an inactive service with nothing running is in sync as absent', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)], [service('web', false)]), { container: ok() }));
    const a = only(r, 'web-api');
    assert.equal(a.desired, 'absent');
    assert.equal(a.observed, 'absent');
    assert.equal(a.drift, 'in-sync');
    assert.equal(a.action, undefined);
    assert.deepEqual(r.actions, []);
  });

  it('a component whose service row is missing is treated as inactive', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)], []), { container: ok() }));
    const a = only(r, 'web-api');
    assert.equal(a.desired, 'absent');
    assert.deepEqual(r.actions, []);
  });

  it('removes a labelled workload that no component claims', () => {
    const s = spec('web', 'api');
    const ghost = rawObserved({ name: 'old-thing', key: { service: 'old', component: 'thing' }, specHash: 'abc' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s), ghost) }, [record(s)]));
    const a = only(r, 'old-thing');
    assert.equal(a.drift, 'orphan');
    assert.equal(a.desired, 'absent');
    assert.deepEqual(a.key, { service: 'old', component: 'thing' });
    assert.match(a.reason, /no such component/);
    assert.deepEqual(r.actions, [{ type: 'remove', key: { service: 'old', component: 'thing' }, workload: 'old-thing', runtime: 'container', reason: 'orphan: no such component in the registry' }] satisfies Action[]);
  });

  it('removes an agent-labelled workload whose component label is unreadable, with key undefined', () => {
    const junk = rawObserved({ name: 'mystery', key: undefined });
    const r = plan(input(desired([]), { container: ok(junk) }));
    const a = only(r, 'mystery');
    assert.equal(a.drift, 'orphan');
    assert.match(a.reason, /no readable component label/);
    assert.equal(r.actions.length, 1);
    const act = r.actions[0]!;
    assert.ok(act.type === 'remove');
    assert.equal(act.key, undefined);
    assert.equal(act.workload, 'mystery');
  });

  it('removes a second workload for the same component under another name', () => {
    const s = spec('web', 'api');
    const dup = observedFor(s, { name: 'web-api-copy', id: 'dup-id' });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s), dup) }, [record(s)]));
    assert.equal(only(r, 'web-api').drift, 'in-sync');
    const d = only(r, 'web-api-copy');
    assert.equal(d.drift, 'orphan');
    assert.equal(d.reason, 'duplicate of web-api');
    assert.equal(d.handle, 'dup-id');
    assert.deepEqual(r.actions, [{ type: 'remove', key: { service: 'web', component: 'api' }, workload: 'web-api-copy', runtime: 'container', reason: 'duplicate of web-api' }] satisfies Action[]);
  });

  it('removes the old-runtime workload after a runtime change and starts the new one', () => {
    const s = spec('web', 'api', { runtime: 'unikernel' });
    const old = observedFor(spec('web', 'api'), { runtime: 'container' });
    const r = plan(input(desired([validRow(s)]), { container: ok(old), unikernel: ok() }));
    const types = r.actions.map((a) => `${a.type}:${a.runtime}:${a.workload}`).sort();
    assert.deepEqual(types, ['remove:container:web-api', 'start:unikernel:web-api']);
    const rm = r.actions.find((a) => a.type === 'remove')!;
    assert.equal(rm.reason, 'runtime changed to unikernel');
  });
});

describe('plan: unknown runtimes and invalid rows are never acted on', () => {
  it('a failed runtime listing gives drift unknown, the error in the reason, and no action', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)]), { container: failed('podman: connection refused') }, [record(s)]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'unknown');
    assert.equal(a.observed, 'unknown');
    assert.equal(a.action, undefined);
    assert.ok(a.reason.includes('podman: connection refused'), a.reason);
    assert.deepEqual(r.actions, []);
  });

  it('a runtime that is not configured at all is unknown, not missing', () => {
    const s = spec('vm', 'k', { runtime: 'unikernel' });
    const r = plan(input(desired([validRow(s)]), { container: ok() }));
    const a = only(r, 'vm-k');
    assert.equal(a.drift, 'unknown');
    assert.match(a.reason, /no unikernel runtime is configured/);
    assert.deepEqual(r.actions, []);
  });

  it("the workloads of a component whose runtime cannot list are not treated as orphans", () => {
    // The component now wants unikernel, whose listing failed; its old container workload is still
    // listed. Without knowing what the unikernel runtime has, nothing of this component is touched.
    const s = spec('web', 'api', { runtime: 'unikernel' });
    const old = observedFor(spec('web', 'api'));
    const r = plan(input(desired([validRow(s)]), { container: ok(old), unikernel: failed('qemu gone') }));
    assert.deepEqual(r.actions, []);
    assert.equal(r.assessments.length, 1);
    assert.equal(r.assessments[0]!.drift, 'unknown');
    assert.ok(r.assessments[0]!.reason.includes('qemu gone'));
  });

  it('a failed listing of one runtime does not stop another runtime from being reconciled', () => {
    const c = spec('web', 'api');
    const u = spec('web', 'vm', { runtime: 'unikernel' });
    const r = plan(input(desired([validRow(c), validRow(u)]), { container: ok(), unikernel: failed('boom') }));
    assert.deepEqual(actionTypes(r), ['start:web-api']);
    assert.equal(only(r, 'web-vm').drift, 'unknown');
  });

  it('an invalid row is drift invalid with no action, and its observed workload is not removed', () => {
    const o = rawObserved({ name: 'web-api', key: { service: 'web', component: 'api' }, specHash: 'deadbeef', id: 'c1' });
    const r = plan(input(desired([invalidRow('web', 'api', 'memory: must be at least 16 MiB')]), { container: ok(o) }));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'invalid');
    assert.equal(a.action, undefined);
    assert.equal(a.observed, 'running');
    assert.equal(a.handle, 'c1');
    assert.match(a.reason, /registry row is invalid: memory: must be at least 16 MiB/);
    assert.deepEqual(r.actions, []);
  });

  it('an invalid row with nothing running is observed absent and still has no action', () => {
    const r = plan(input(desired([invalidRow('web', 'api')]), { container: ok() }));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'invalid');
    assert.equal(a.observed, 'absent');
    assert.deepEqual(r.actions, []);
  });
});

describe('plan: backoff and settling', () => {
  const future = new Date(NOW.getTime() + 60_000).toISOString();
  const past = new Date(NOW.getTime() - 1_000).toISOString();

  it('holds back a start while next_attempt_at is in the future', () => {
    const s = spec('web', 'api');
    const rec = record(s, { handle: null, failures: 3, nextAttemptAt: future, lastError: 'image not found' });
    const r = plan(input(desired([validRow(s)]), { container: ok() }, [rec]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'missing');
    assert.equal(a.action, undefined);
    assert.equal(a.backoffUntil, future);
    assert.match(a.reason, /backing off/);
    assert.match(a.reason, /failed 3x/);
    assert.match(a.reason, /image not found/);
    assert.deepEqual(r.actions, []);
  });

  it('holds back a restart while backing off', () => {
    const s = spec('web', 'api');
    const rec = record(s, { failures: 2, nextAttemptAt: future });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { state: 'exited', exitCode: 1 })) }, [rec]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'stopped');
    assert.match(a.reason, /backing off/);
    assert.equal(a.backoffUntil, future);
    assert.deepEqual(r.actions, []);
  });

  it('holds back a replace while backing off', () => {
    const s = spec('web', 'api', { image: 'localhost/new:2' });
    const rec = record(s, { failures: 1, nextAttemptAt: future });
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { specHash: 'f'.repeat(64) })) }, [rec]));
    const a = only(r, 'web-api');
    assert.equal(a.drift, 'spec-changed');
    assert.match(a.reason, /backing off/);
    assert.deepEqual(r.actions, []);
  });

  it('does not hold anything back once next_attempt_at has passed', () => {
    const s = spec('web', 'api');
    const cases: Array<[Observed[], string]> = [
      [[], 'start:web-api'],
      [[observedFor(s, { state: 'exited', exitCode: 1 })], 'restart:web-api'],
      [[observedFor(s, { specHash: 'f'.repeat(64) })], 'replace:web-api'],
    ];
    for (const [items, expected] of cases) {
      const rec = record(s, { failures: 4, nextAttemptAt: past });
      const r = plan(input(desired([validRow(s)]), { container: ok(...items) }, [rec]));
      assert.deepEqual(actionTypes(r), [expected]);
      const a = only(r, 'web-api');
      assert.equal(a.backoffUntil, undefined);
      assert.doesNotMatch(a.reason, /backing off/);
    }
  });

  it('holds back only the spec that failed: any change by the operator is tried at once', () => {
    const failed = spec('edge', 'fw', { runtime: 'unikernel', image_sha256: '0'.repeat(64) });
    const rec = record(failed, { handle: null, failures: 3, nextAttemptAt: future, failedSpecHash: attemptHash(failed) });
    const planFor = (s: ComponentSpec) => plan(input(desired([validRow(s)]), { unikernel: ok() }, [rec]));
    assert.deepEqual(actionTypes(planFor(failed)), [], 'the same spec waits');
    // Fields outside specHash (checks on the workload, the restart policy) still count as a fix.
    const fixes: Array<Partial<ComponentSpec>> = [{ image_sha256: 'a'.repeat(64) }, { image_sha256: undefined }, { ssh_host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey' }, { restart: 'never' }, { memory: 512 }];
    for (const fix of fixes) {
      const s = { ...failed, ...fix };
      assert.notEqual(attemptHash(s), attemptHash(failed), JSON.stringify(fix));
      assert.deepEqual(actionTypes(planFor(s)), ['start:edge-fw'], JSON.stringify(fix));
    }
  });

  it('never holds back an adopt or an inactive-service remove', () => {
    const s = spec('web', 'api');
    const rec = record(s, { handle: 'other', failures: 5, nextAttemptAt: future });
    const adopt = plan(input(desired([validRow(s)]), { container: ok(observedFor(s)) }, [rec]));
    assert.deepEqual(actionTypes(adopt), ['adopt:web-api']);
    const remove = plan(input(desired([validRow(s)], [service('web', false)]), { container: ok(observedFor(s)) }, [rec]));
    assert.deepEqual(actionTypes(remove), ['remove:web-api']);
  });

  it('lists as settled a workload with failures that has run in sync longer than stableAfterMs', () => {
    const s = spec('web', 'api');
    const startedAt = new Date(NOW.getTime() - STABLE_MS - 1).toISOString();
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { startedAt })) }, [record(s, { failures: 2 })]));
    assert.deepEqual(settled(r), ['web-api']);
    assert.deepEqual(r.actions, []);
  });

  it('does not settle a workload that started too recently, has no failures, or has no start time', () => {
    const s = spec('web', 'api');
    const recent = new Date(NOW.getTime() - STABLE_MS + 1_000).toISOString();
    const old = new Date(NOW.getTime() - STABLE_MS * 10).toISOString();
    const cases: Array<[string | undefined, number]> = [
      [recent, 2],
      [old, 0],
      [undefined, 2],
    ];
    for (const [startedAt, failures] of cases) {
      const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { startedAt })) }, [record(s, { failures })]));
      assert.deepEqual(settled(r), [], `startedAt=${startedAt} failures=${failures}`);
    }
  });

  it('does not settle a workload that is not in sync', () => {
    const s = spec('web', 'api');
    const old = new Date(NOW.getTime() - STABLE_MS * 10).toISOString();
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { startedAt: old, state: 'exited', exitCode: 1 })) }, [record(s, { failures: 2 })]));
    assert.deepEqual(settled(r), []);
  });
});

describe('plan: when to look again (requeueAt)', () => {
  const at = (ms: number): string => new Date(NOW.getTime() + ms).toISOString();

  it('nothing due: no requeue for a start, an in-sync workload, or a workload with no failures', () => {
    const a = spec('web', 'a');
    const b = spec('web', 'b');
    const recent = at(-1_000);
    const r = plan(input(desired([validRow(a), validRow(b)]), { container: ok(observedFor(b, { startedAt: recent })) }, [record(b, { startedAt: recent })]));
    assert.deepEqual(actionTypes(r), ['start:web-a']);
    assert.equal(r.requeueAt, undefined);
  });

  it('a held-back action is due when its backoff ends', () => {
    const s = spec('web', 'api');
    const until = at(4_000);
    const r = plan(input(desired([validRow(s)]), { container: ok() }, [record(s, { handle: null, failures: 3, nextAttemptAt: until })]));
    assert.equal(only(r, 'web-api').backoffUntil, until);
    assert.deepEqual(r.requeueAt, new Date(until));
  });

  it('a running workload with failures is due when it becomes stable (its failure count is reset then)', () => {
    const s = spec('web', 'api');
    const startedAt = at(-10_000);
    const r = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { startedAt })) }, [record(s, { failures: 2 })]));
    assert.deepEqual(settled(r), []);
    assert.deepEqual(r.requeueAt, new Date(NOW.getTime() - 10_000 + STABLE_MS));
    // at that time it is settled, and nothing more is due
    const later = plan(input(desired([validRow(s)]), { container: ok(observedFor(s, { startedAt })) }, [record(s, { failures: 2 })], { now: r.requeueAt! }));
    assert.deepEqual(settled(later), ['web-api']);
    assert.equal(later.requeueAt, undefined);
  });

  it('the earliest of several due times', () => {
    const a = spec('web', 'a');
    const b = spec('web', 'b');
    const c = spec('web', 'c');
    const r = plan(
      input(desired([validRow(a), validRow(b), validRow(c)]), { container: ok(observedFor(c, { startedAt: at(-25_000) })) }, [
        record(a, { handle: null, failures: 1, nextAttemptAt: at(9_000) }),
        record(b, { handle: null, failures: 5, nextAttemptAt: at(7_000) }),
        record(c, { failures: 1 }),
      ]),
    );
    assert.deepEqual(r.requeueAt, new Date(NOW.getTime() + 5_000), 'c becomes stable before either backoff ends');
    const noC = plan(input(desired([validRow(a), validRow(b)]), { container: ok() }, [record(a, { handle: null, failures: 1, nextAttemptAt: at(9_000) }), record(b, { handle: null, failures: 5, nextAttemptAt: at(7_000) })]));
    assert.deepEqual(noC.requeueAt, new Date(NOW.getTime() + 7_000));
  });

  it('nothing is due for a backoff already over, a backoff of a spec since changed, or a runtime that cannot list', () => {
    const s = spec('web', 'api');
    const over = plan(input(desired([validRow(s)]), { container: ok() }, [record(s, { handle: null, failures: 2, nextAttemptAt: at(-1) })]));
    assert.deepEqual(actionTypes(over), ['start:web-api']);
    assert.equal(over.requeueAt, undefined);
    const fixed = spec('web', 'api', { image: 'localhost/fixed:2' });
    const changed = plan(input(desired([validRow(fixed)]), { container: ok() }, [record(s, { handle: null, failures: 2, nextAttemptAt: at(5_000), failedSpecHash: attemptHash(s) })]));
    assert.deepEqual(actionTypes(changed), ['start:web-api']);
    assert.equal(changed.requeueAt, undefined);
    const unknown = plan(input(desired([validRow(s)]), { container: failed('podman: timed out') }, [record(s, { failures: 2, nextAttemptAt: at(5_000) })]));
    assert.equal(unknown.requeueAt, undefined, 'its workload is unknown: the runtime answering again wakes the loop');
  });

  it('an inactive service\'s backoff is not due: nothing waits for it', () => {
    const s = spec('web', 'api');
    const r = plan(input(desired([validRow(s)], [service('web', false)]), { container: ok() }, [record(s, { handle: null, failures: 2, nextAttemptAt: at(5_000) })]));
    assert.deepEqual(r.actions, []);
    assert.equal(r.requeueAt, undefined);
  });
});

describe('plan: level-triggered and ordered', () => {
  it('planning the same input twice gives the same result', () => {
    const a = spec('web', 'api');
    const b = spec('web', 'worker', { restart: 'on-failure' });
    const c = spec('db', 'main');
    const v = spec('vm', 'k', { runtime: 'unikernel' });
    const i = input(
      desired([validRow(a), validRow(b), validRow(c), validRow(v), invalidRow('web', 'bad')], [service('web'), service('db', false), service('vm')]),
      {
        container: ok(
          observedFor(a, { specHash: 'x' }),
          observedFor(b, { state: 'exited', exitCode: 2 }),
          observedFor(c),
          rawObserved({ name: 'stray', key: { service: 'gone', component: 'x' } }),
        ),
        unikernel: failed('no kvm'),
      },
      [record(b, { failures: 1, nextAttemptAt: new Date(NOW.getTime() + 5_000).toISOString() })],
    );
    const first = plan(i);
    const second = plan(i);
    assert.deepEqual(second, first);
    // and the plan is what it should be, not just stable
    assert.deepEqual(actionTypes(first).sort(), ['remove:db-main', 'remove:stray', 'replace:web-api']);
  });

  it('sorts assessments by component key then workload', () => {
    const z = spec('zz', 'a');
    const a = spec('aa', 'b');
    const m = spec('mm', 'c');
    const r = plan(input(desired([validRow(z), validRow(a), validRow(m)]), { container: ok() }));
    assert.deepEqual(r.assessments.map((x) => x.workload), ['aa-b', 'mm-c', 'zz-a']);
    assert.deepEqual(r.actions.map((x) => x.workload), ['aa-b', 'mm-c', 'zz-a']);
  });

  it('an empty registry and nothing observed plans nothing', () => {
    const r = plan(input(desired([]), { container: ok(), unikernel: ok() }));
    assert.deepEqual(r, { assessments: [], actions: [], held: [], unknown: [], housekeeping: [], requeueAt: undefined, notAdmitted: [], resources: undefined, drained: false });
  });
});

describe('stale instances rows (staleInstances)', () => {
  const a = spec('s', 'a');
  const gone = spec('old', 'x');
  const failedStart = record(spec('old', 'y'), { handle: null, failures: 3, nextAttemptAt: '2024-05-01T12:05:00.000Z' });
  const stale = (d: DesiredState, observed: Partial<Record<RuntimeKind, RuntimeListing>>, instances: InstanceRecord[], busy: string[] = []): string[] =>
    staleInstances({ instances, listings: observed, assessments: plan(input(d, observed, instances)).assessments, busy: new Set(busy) });

  it('forgets rows with no workload and no component, failed starts (no handle) included', () => {
    const listed = { container: ok(observedFor(a)), unikernel: ok() };
    assert.deepEqual(stale(desired([validRow(a)]), listed, [record(a), record(gone), failedStart]), ['old-x', 'old-y']);
  });

  it('keeps the row of a desired component that is not running, and of a workload that still runs', () => {
    const b = spec('s', 'b');
    const listed = { container: ok(observedFor(gone)), unikernel: ok() };
    assert.deepEqual(stale(desired([validRow(a), validRow(b)]), listed, [record(a), record(b, { handle: null, failures: 1 }), record(gone)]), []);
  });

  it('keeps the rows of an invalid component and of a component with an action under way', () => {
    const listed = { container: ok(), unikernel: ok() };
    assert.deepEqual(stale(desired([invalidRow('s', 'a')]), listed, [record(a), record(gone)], ['old/x']), []);
  });

  it('forgets nothing when a runtime could not list: its workloads may still run', () => {
    const listed = { container: ok(), unikernel: failed('qemu: timed out') };
    assert.deepEqual(stale(desired([]), listed, [record(gone), failedStart]), []);
  });

  it('forgets the row of an inactive service whose workload is gone', () => {
    const listed = { container: ok(), unikernel: ok() };
    assert.deepEqual(stale(desired([validRow(a)], [service('s', false)]), listed, [record(a)]), ['s-a']);
  });
});
