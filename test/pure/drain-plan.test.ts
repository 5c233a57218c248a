// The planner's drained mode on pure inputs: while drained every workload of the node is stopped
// (kept, not removed) and nothing starts, restarts, replaces or is adopted; removals of what no
// component wants go on; after the undrain, what the drain stopped starts again whatever its
// restart policy, and what had exited on its own before stays as its policy says. Also what `plan`
// and `status` print about a drained node, and what `agent drain` waits for.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { plan, type Assessment, type PlanInput, type PlanResult, type RuntimeListing } from '../../src/agent/planner.js';
import { planDocument } from '../../src/agent/plan-report.js';
import type { StatusReport, StatusRow } from '../../src/agent/status.js';
import { formatPlan, formatStatus } from '../../src/cli/format.js';
import { drainRows, runningText } from '../../src/cli/drain-wait.js';
import { attemptHash, specHash } from '../../src/identity.js';
import type { RuntimeKind } from '../../src/manifest/schema.js';
import type { DesiredState, InstanceRecord } from '../../src/registry/index.js';
import { desired, invalidRow, observedFor, ok, rawObserved, record, service, spec, validRow } from '../helpers/spec.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');

function input(d: DesiredState, observed: Partial<Record<RuntimeKind, RuntimeListing>>, instances: InstanceRecord[] = [], over: Partial<PlanInput> = {}): PlanInput {
  return { desired: d, observed, instances, now: NOW, stableAfterMs: 30_000, ...over };
}
const drained = (d: DesiredState, observed: Partial<Record<RuntimeKind, RuntimeListing>>, instances: InstanceRecord[] = []): PlanResult =>
  plan(input(d, observed, instances, { drained: true }));

function only(r: PlanResult, w: string): Assessment {
  const found = r.assessments.filter((a) => a.workload === w);
  assert.equal(found.length, 1, `one assessment for ${w}: ${JSON.stringify(r.assessments)}`);
  return found[0]!;
}
const actions = (r: PlanResult): string[] => r.actions.map((a) => `${a.type}:${a.workload}`);
const marksForgotten = (r: PlanResult): string[] => r.housekeeping.flatMap((h) => (h.type === 'forget-drain-mark' ? [`${h.workload}: ${h.reason}`] : []));

const api = spec('web', 'api');
const db = spec('web', 'db', { restart: 'never' });
const vm = spec('web', 'vm', { runtime: 'unikernel' });

describe('plan, drained: every workload stopped, nothing started', () => {
  it('stops running containers and VMs gracefully (a stop, not a removal); the plan says the node is drained', () => {
    const r = drained(desired([validRow(api), validRow(vm)]), { container: ok(observedFor(api)), unikernel: ok(observedFor(vm)) }, [record(api), record(vm)]);
    assert.deepEqual(actions(r), ['stop:web-api', 'stop:web-vm']);
    assert.equal(r.drained, true);
    for (const w of ['web-api', 'web-vm']) {
      const a = only(r, w);
      assert.equal(a.drift, 'drained');
      assert.equal(a.desired, 'running', 'the desired state is untouched');
      assert.equal(a.reason, 'running: to be stopped (drained)');
      assert.equal(a.action?.type, 'stop');
    }
    assert.equal(r.requeueAt, undefined);
  });

  it('starts nothing: a missing component, an exited one under restart always, a created one', () => {
    const c = spec('web', 'c');
    const r = drained(desired([validRow(api), validRow(db), validRow(c)]), {
      container: ok(observedFor(db, { state: 'exited', exitCode: 1 }), observedFor(c, { state: 'created' })),
    }, [record(db), record(c)]);
    assert.deepEqual(r.actions, []);
    assert.equal(only(r, 'web-api').reason, 'not started (drained)');
    assert.equal(only(r, 'web-db').reason, 'stopped (drained)');
    assert.equal(only(r, 'web-c').reason, 'stopped (drained)');
    assert.ok(r.assessments.every((a) => a.drift === 'drained'));
  });

  it('neither replaces a changed spec nor adopts an unrecorded workload: both are stopped', () => {
    const changed = spec('web', 'api', { memory: 96 });
    const r = drained(desired([validRow(changed), validRow(db)]), { container: ok(observedFor(changed, { specHash: specHash(api) }), observedFor(db)) }, [record(api)]);
    assert.deepEqual(actions(r), ['stop:web-api', 'stop:web-db']);
  });

  it('leaves a stopping workload to finish, and never holds a stop back with a backoff', () => {
    const until = new Date(NOW.getTime() + 60_000).toISOString();
    const r = drained(desired([validRow(api), validRow(db)]), { container: ok(observedFor(api), observedFor(db, { state: 'stopping' })) }, [
      record(api, { failures: 3, nextAttemptAt: until, failedSpecHash: attemptHash(api) }),
      record(db),
    ]);
    assert.deepEqual(actions(r), ['stop:web-api']);
    assert.deepEqual(r.held, []);
    assert.equal(only(r, 'web-db').reason, 'stopping (drained)');
  });

  it('still removes what no component wants (an orphan, an inactive service), and stops the workload of an invalid row', () => {
    const off = spec('off', 'x');
    const r = drained(
      desired([validRow(api), validRow(off), invalidRow('bad', 'y')], [service('web'), service('off', false), service('bad')]),
      { container: ok(observedFor(api), observedFor(off), rawObserved({ name: 'stray', key: { service: 'gone', component: 'z' } }), rawObserved({ name: 'bad-y', key: { service: 'bad', component: 'y' } })) },
      [record(api)],
    );
    assert.deepEqual(actions(r).sort(), ['remove:off-x', 'remove:stray', 'stop:bad-y', 'stop:web-api']);
  });
});

describe('plan, undrained: what the drain stopped starts again', () => {
  const marks = (...w: string[]): ReadonlySet<string> => new Set(w);

  it('starts (not restarts) a drain-stopped workload whatever its policy: never, on-failure with exit 0, always', () => {
    const onf = spec('web', 'onf', { restart: 'on-failure' });
    const r = plan(input(desired([validRow(api), validRow(db), validRow(onf)]), {
      container: ok(observedFor(api, { state: 'exited', exitCode: 143 }), observedFor(db, { state: 'exited', exitCode: 143 }), observedFor(onf, { state: 'exited', exitCode: 0 })),
    }, [record(api), record(db), record(onf)], { stoppedByDrain: marks('web-api', 'web-db', 'web-onf') }));
    assert.deepEqual(actions(r), ['start:web-api', 'start:web-db', 'start:web-onf']);
    assert.ok(r.actions.every((a) => a.reason === 'stopped by the drain, node undrained'));
    assert.equal(only(r, 'web-db').drift, 'stopped');
    assert.equal(r.drained, false);
  });

  it('leaves a workload that exited on its own (no mark) to its policy', () => {
    const r = plan(input(desired([validRow(db)]), { container: ok(observedFor(db, { state: 'exited', exitCode: 0 })) }, [record(db)], { stoppedByDrain: marks() }));
    assert.deepEqual(r.actions, []);
    assert.equal(only(r, 'web-db').drift, 'exited');
  });

  it('replaces a drain-stopped workload whose spec changed meanwhile; a running one with a stale mark is in sync', () => {
    const changed = spec('web', 'db', { restart: 'never', memory: 96 });
    const r = plan(input(desired([validRow(changed), validRow(api)]), {
      container: ok(observedFor(changed, { state: 'exited', specHash: specHash(db) }), observedFor(api)),
    }, [record(db), record(api)], { stoppedByDrain: marks('web-db', 'web-api') }));
    assert.deepEqual(actions(r), ['replace:web-db']);
    assert.equal(only(r, 'web-api').drift, 'in-sync');
    assert.deepEqual(marksForgotten(r), ['web-api: stopped by a drain, but runs again']);
  });

  it('forgets marks of workloads that run again or exist nowhere; keeps them while drained, while a runtime cannot list, for a component in flux', () => {
    const d = desired([validRow(api), validRow(db)]);
    const listing = { container: ok(observedFor(api), observedFor(db, { state: 'exited' })) };
    const m = marks('web-api', 'web-db', 'web-gone');
    const r = plan(input(d, listing, [record(api), record(db)], { stoppedByDrain: m }));
    assert.deepEqual(marksForgotten(r), ['web-api: stopped by a drain, but runs again', 'web-gone: stopped by a drain, but exists nowhere now']);
    assert.deepEqual(actions(r), ['start:web-db'], 'the stopped one keeps its mark until its start');
    assert.deepEqual(marksForgotten(plan(input(d, listing, [], { stoppedByDrain: m, drained: true }))), []);
    assert.deepEqual(marksForgotten(plan(input(d, { ...listing, unikernel: { ok: false, error: 'qemu gone' } }, [], { stoppedByDrain: m }))), []);
    assert.deepEqual(marksForgotten(plan(input(d, listing, [], { stoppedByDrain: m, busy: new Set(['web/api']) }))), ['web-gone: stopped by a drain, but exists nowhere now']);
  });
});

describe('what a drained node shows', () => {
  it('plan: nothing to do but drained; with stops to make, a note', () => {
    const stopped = drained(desired([validRow(db)]), { container: ok(observedFor(db, { state: 'exited' })) }, [record(db)]);
    const doc = planDocument(stopped);
    assert.equal(doc.drained, true);
    assert.equal(formatPlan(doc), 'nothing to do: the node is drained (every workload stopped; agent undrain starts them again)');
    const stopping = formatPlan(planDocument(drained(desired([validRow(api)]), { container: ok(observedFor(api)) }, [record(api)])));
    assert.match(stopping, /^ *ACTION +COMPONENT/);
    assert.match(stopping, /stop +web\/api +container +node drained/);
    assert.match(stopping, /the node is drained: workloads are stopped and nothing starts until agent undrain/);
    assert.equal(formatPlan(planDocument(plan(input(desired([]), { container: ok() })))), 'nothing to do: the node matches the registry');
  });

  const row = (component: string, observed: string, drift: StatusRow['drift'] = 'drained', reason = 'stopped (drained)'): StatusRow => ({
    service: 'web', component, workload: `web-${component}`, runtime: 'container', desired: 'running', observed, drift, reason, next_action: null, backoff_until: null,
    last_error: null, started_at: null, address: null, network: null, handle: null, restarts: 0, last_event: null, observed_at: null, observed_age_seconds: null,
    health: null, health_output: null, health_since: null,
  });
  const report = (components: StatusRow[], drainedSince: string | null): StatusReport => ({
    registry: { path: '/tmp/agent.db', writable: true, reason: null, free_bytes: null },
    agent: { running: true, pid: 7, last_pass_at: null, once_in_progress: false },
    node: { drained: drainedSince !== null, drained_since: drainedSince },
    runtimes: {},
    resources: null,
    source: null,
    summary: { drained: components.length },
    components,
  });

  it('status: a node line only when drained, and each component stopped (drained)', () => {
    const since = new Date(NOW.getTime() - 120_000).toISOString();
    const text = formatStatus(report([row('api', 'exited'), row('db', 'exited')], since), { now: NOW.getTime() });
    assert.match(text, new RegExp(`^node: +drained since ${since} \\(2m ago\\): workloads are stopped and nothing starts until agent undrain$`, 'm'));
    assert.match(text, /^web\/api +container +exited +drained .* stopped \(drained\)$/m);
    assert.doesNotMatch(formatStatus(report([row('api', 'running', 'in-sync', '')], null)), /^node:/m);
  });

  it('drain waits for every workload not stopped; unknown counts as not stopped, never started as stopped', () => {
    const r = report([row('api', 'running', 'drained', 'running: to be stopped (drained)'), row('db', 'exited'), row('new', 'absent', 'drained', 'not started (drained)'), row('odd', 'unknown', 'drained', 'container runtime cannot list workloads: boom'), row('off', 'absent', 'in-sync', 'service is inactive')], NOW.toISOString());
    const { rows, running } = drainRows(r);
    assert.deepEqual(rows.map((c) => c.component), ['api', 'db', 'new', 'odd']);
    assert.deepEqual(running.map((c) => c.component), ['api', 'odd']);
    assert.equal(runningText(running), 'web/api running; web/odd unknown (container runtime cannot list workloads: boom)');
    assert.deepEqual(drainRows(report([row('db', 'exited')], NOW.toISOString())).running, []);
  });
});
