// What `plan` and `status` owe an operator, on pure inputs: spec changes named by field, actions
// held by a backoff with their due time, runtimes that cannot list, the last error kept while a
// component fails, the status filter and --check, and the table's width.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { plan, type PlanInput, type RuntimeListing } from '../../src/agent/planner.js';
import { planPending, planDocument } from '../../src/agent/plan-report.js';
import type { StatusReport, StatusRow } from '../../src/agent/status.js';
import { formatPlan, formatStatus, STATUS_WIDTH } from '../../src/cli/format.js';
import { filterStatus, parseStatusRef, statusDrifted } from '../../src/cli/status-filter.js';
import { NotFoundError, ValidationError } from '../../src/errors.js';
import { attemptHash, SHAPING_FIELDS, specHash } from '../../src/identity.js';
import { specChanges } from '../../src/manifest/diff.js';
import type { RuntimeKind } from '../../src/manifest/schema.js';
import type { DesiredState, InstanceRecord } from '../../src/registry/index.js';
import { desired, failed, observedFor, ok, record, spec, validRow } from '../helpers/spec.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const input = (d: DesiredState, observed: Partial<Record<RuntimeKind, RuntimeListing>>, instances: InstanceRecord[] = []): PlanInput => ({ desired: d, observed, instances, now: NOW, stableAfterMs: 30_000 });
const at = (ms: number): string => new Date(NOW.getTime() + ms).toISOString();

describe('specChanges: a spec change field by field', () => {
  it('names scalars old → new, env key by key, arrays whole; nothing when equal', () => {
    const a = spec('web', 'api', { memory: 64, env: { KEEP: '1', GONE: 'x', EDIT: 'a' } });
    const b = spec('web', 'api', { memory: 96, env: { KEEP: '1', EDIT: 'b', FOO: 'y' }, cmd: ['sleep', '5'] });
    assert.deepEqual(specChanges(a, b, SHAPING_FIELDS), ['cmd ["sleep","1000"] → ["sleep","5"]', 'env.EDIT a → b', 'env.FOO added', 'env.GONE removed', 'memory 64 → 96']);
    assert.deepEqual(specChanges(a, { ...a, env: { EDIT: 'a', GONE: 'x', KEEP: '1' } }), []);
  });

  it('compares only the fields it is given (the restart policy does not shape a workload)', () => {
    const a = spec('web', 'api');
    assert.deepEqual(specChanges(a, { ...a, restart: 'never' }, SHAPING_FIELDS), []);
    assert.deepEqual(specChanges(a, { ...a, restart: 'never' }), ['restart always → never']);
  });
});

describe('plan: the spec-changed reason', () => {
  it('names the changed fields when the record keeps the running spec', () => {
    const old = spec('web', 'api', { memory: 64 });
    const now = spec('web', 'api', { memory: 96, env: { FOO: '1' } });
    const r = plan(input(desired([validRow(now)]), { container: ok(observedFor(now, { specHash: specHash(old) })) }, [record(old)]));
    assert.equal(r.assessments[0]!.reason, 'spec changed: env.FOO added, memory 64 → 96');
    assert.equal(r.actions[0]!.type, 'replace');
    assert.equal(r.actions[0]!.reason, 'spec changed: env.FOO added, memory 64 → 96');
  });

  it('falls back to the hashes when the kept spec is not the one running (another hash, or none kept)', () => {
    const old = spec('web', 'api', { memory: 64 });
    const other = spec('web', 'api', { memory: 80 });
    const now = spec('web', 'api', { memory: 96 });
    const o = observedFor(now, { specHash: specHash(old) });
    for (const rec of [record(other), record(old, { spec: null })]) {
      const reason = plan(input(desired([validRow(now)]), { container: ok(o) }, [rec])).assessments[0]!.reason;
      assert.equal(reason, `spec changed (running ${specHash(old).slice(0, 12)}, desired ${specHash(now).slice(0, 12)})`);
    }
  });

  it('an adoption carries the desired spec, to be recorded as what runs', () => {
    const s = spec('web', 'api');
    const act = plan(input(desired([validRow(s)]), { container: ok(observedFor(s)) })).actions[0]!;
    assert.ok(act.type === 'adopt');
    assert.deepEqual(act.startedFrom, s);
  });
});

describe('plan: actions held by a backoff', () => {
  it('lists the held action with its due time, failures and last error; none in actions', () => {
    const s = spec('web', 'api', { image: 'localhost/nope:1' });
    const rec = record(s, { handle: null, failures: 2, nextAttemptAt: at(8_000), lastError: 'image not known', failedSpecHash: attemptHash(s) });
    const r = plan(input(desired([validRow(s)]), { container: ok() }, [rec]));
    assert.deepEqual(r.actions, []);
    assert.equal(r.held.length, 1);
    const h = r.held[0]!;
    assert.equal(h.action.type, 'start');
    assert.equal(h.until, at(8_000));
    assert.equal(h.failures, 2);
    assert.equal(h.lastError, 'image not known');
    const report = planDocument(r);
    assert.deepEqual(report.held.map((x) => [x.type, x.service, x.component, x.due_at, x.last_error]), [['start', 'web', 'api', at(8_000), 'image not known']]);
    assert.equal(planPending(report), true);
    const text = formatPlan(report, { now: NOW.getTime() });
    assert.match(text, /^start web\/api held by backoff until \d\d:\d\d:\d\d \(in 8s\): image not known$/m);
    assert.doesNotMatch(text, /nothing to do/);
  });

  it('the action table fits 120 columns, the reason cut in the middle; --wide keeps it whole', () => {
    const env = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`VARIABLE_NUMBER_${i}`, 'x']));
    const before = spec('web', 'api', { memory: 64 });
    const after = spec('web', 'api', { memory: 96, env });
    const rec = record(before, { handle: observedFor(before).id });
    const r = plan(input(desired([validRow(after)]), { container: ok(observedFor(before)) }, [rec]));
    assert.deepEqual(r.actions.map((a) => a.type), ['replace']);
    const report = planDocument(r);
    const reason = report.actions[0]!.reason;
    assert.ok(reason.length > 200, `a long reason to cut (${reason.length} characters)`);
    const narrow = formatPlan(report, { now: NOW.getTime() });
    assert.ok(Math.max(...narrow.split('\n').map((l) => l.length)) <= STATUS_WIDTH, narrow);
    assert.match(narrow, /^replace +web\/api +container +spec changed: .*….*memory 64 → 96$/m);
    assert.ok(formatPlan(report, { wide: true, now: NOW.getTime() }).includes(reason), 'the whole reason with --wide');
  });

  it('a backoff that has ended holds nothing: the action is due, and the last error stays on the assessment', () => {
    const s = spec('web', 'api', { image: 'localhost/nope:1' });
    const rec = record(s, { handle: null, failures: 1, nextAttemptAt: at(-1_000), lastError: 'image not known', failedSpecHash: attemptHash(s) });
    const r = plan(input(desired([validRow(s)]), { container: ok() }, [rec]));
    assert.deepEqual(r.held, []);
    assert.deepEqual(r.actions.map((a) => a.type), ['start']);
    assert.equal(r.assessments[0]!.lastError, 'image not known');
    assert.doesNotMatch(r.assessments[0]!.reason, /image not known/, 'the reason no longer carries it: the row does');
  });

  it('no last error once in sync, nor for another spec than the one that failed', () => {
    const s = spec('web', 'api');
    const inSync = plan(input(desired([validRow(s)]), { container: ok(observedFor(s)) }, [record(s, { failures: 1, lastError: 'boom', failedSpecHash: attemptHash(s) })]));
    assert.equal(inSync.assessments[0]!.lastError, undefined);
    const fixed = plan(input(desired([validRow(s)]), { container: ok() }, [record(s, { failures: 1, lastError: 'boom', failedSpecHash: 'another' })]));
    assert.equal(fixed.assessments[0]!.lastError, undefined);
  });
});

describe('plan: runtimes that cannot list', () => {
  it('names the runtime, its error and its components; pending only when it has components', () => {
    const a = spec('web', 'api');
    const b = spec('web', 'db');
    const r = plan(input(desired([validRow(a), validRow(b)]), { container: failed('podman is not installed'), unikernel: ok() }));
    assert.deepEqual(r.unknown, [{ runtime: 'container', error: 'podman is not installed', components: ['web/api', 'web/db'] }]);
    const report = planDocument(r);
    assert.equal(planPending(report), true);
    assert.match(formatPlan(report), /^the container runtime cannot list \(podman is not installed\): its components are unknown and left alone: web\/api, web\/db$/m);

    const vmOnly = plan(input(desired([]), { container: failed('podman is not installed'), unikernel: ok() }));
    assert.deepEqual(vmOnly.unknown.map((u) => u.components), [[]]);
    assert.equal(planPending(planDocument(vmOnly)), false);
  });

  it('nothing to do only when nothing is due, held or unknown', () => {
    const s = spec('web', 'api');
    const report = planDocument(plan(input(desired([validRow(s)]), { container: ok(observedFor(s)) }, [record(s)])));
    assert.equal(planPending(report), false);
    assert.equal(formatPlan(report), 'nothing to do: the node matches the registry');
  });
});

// ---- status: filter, --check, table -----------------------------------------------------------

function statusRow(over: Partial<StatusRow> = {}): StatusRow {
  return {
    service: 'web', component: 'api', workload: 'web-api', runtime: 'container', desired: 'running', observed: 'running', drift: 'in-sync', reason: '',
    next_action: null, backoff_until: null, last_error: null, started_at: at(-120_000), address: null, network: null, handle: 'abc', restarts: 0, last_event: null, observed_at: null, observed_age_seconds: null,
    health: null, health_output: null, health_since: null, ...over,
  };
}

function report(rows: StatusRow[]): StatusReport {
  const summary: Record<string, number> = {};
  for (const c of rows) summary[c.drift] = (summary[c.drift] ?? 0) + 1;
  return { registry: { path: '/tmp/agent.db', writable: true, reason: null, free_bytes: null }, agent: { running: false, pid: null, last_pass_at: null, once_in_progress: false }, node: { drained: false, drained_since: null }, runtimes: { container: { ok: true, error: null, observed_at: null, age_seconds: null } }, source: null, resources: null, summary, components: rows };
}

describe('status: filter and --check', () => {
  const rows = [statusRow(), statusRow({ component: 'db', workload: 'web-db', drift: 'missing', observed: 'absent' }), statusRow({ service: 'edge', component: 'fw', workload: 'edge-fw' })];

  it('keeps a service or one component, with its summary', () => {
    const web = filterStatus(report(rows), parseStatusRef('web'));
    assert.deepEqual(web.components.map((c) => c.component), ['api', 'db']);
    assert.deepEqual(web.summary, { 'in-sync': 1, missing: 1 });
    assert.equal(statusDrifted(web), true);
    const one = filterStatus(report(rows), parseStatusRef('web/api'));
    assert.deepEqual(one.summary, { 'in-sync': 1 });
    assert.equal(statusDrifted(one), false);
  });

  it('a bad reference is a ValidationError naming the argument; no match is NotFound naming it', () => {
    for (const bad of ['Web', 'web/', 'a/b/c', '/api', 'web api']) {
      assert.throws(() => parseStatusRef(bad), (e: unknown) => e instanceof ValidationError && e.exitCode === 2 && e.message.includes('SERVICE[/COMPONENT]') && e.message.includes(`'${bad}'`));
    }
    assert.throws(() => filterStatus(report(rows), parseStatusRef('nope')), (e: unknown) => e instanceof NotFoundError && /no service nope/.test(e.message));
    assert.throws(() => filterStatus(report(rows), parseStatusRef('web/x')), (e: unknown) => e instanceof NotFoundError && /no component web\/x .*\(service web has: api, db\)/.test(e.message));
  });
});

describe('status: the table', () => {
  const longError = `podman run web-api: Error: ${'x'.repeat(150)}: image not known`;
  const failing = statusRow({ drift: 'missing', observed: 'absent', reason: `not running (missing); failed 3x, backing off until 2024-05-01 12:00:08Z (last error: ${longError})`, backoff_until: at(8_000), last_error: longError, next_action: null, started_at: null });
  const rows = [statusRow({ service: 'a-rather-long-service-name', component: 'and-a-long-component', address: '10.99.0.2', network: 'bridge' }), failing];

  it('fits 120 columns by default; --wide shows everything', () => {
    const narrow = formatStatus(report(rows), { now: NOW.getTime() }).split('\n');
    for (const l of narrow) assert.ok(l.length <= STATUS_WIDTH, `${l.length} > ${STATUS_WIDTH}: ${l}`);
    const line = narrow.find((l) => l.startsWith('web/api'))!;
    assert.match(line, /retry in 8s; .*…x*: image not known$/, 'both ends of the reason stay');
    const wide = formatStatus(report(rows), { now: NOW.getTime(), wide: true });
    assert.ok(wide.split('\n').some((l) => l.length > STATUS_WIDTH));
    assert.ok(wide.includes(longError));
    assert.match(wide, /10\.99\.0\.2 \(bridge\)/);
  });

  it('keeps the last error after the backoff ended', () => {
    const after = statusRow({ drift: 'missing', observed: 'absent', reason: 'not running (missing)', last_error: 'image not known', next_action: 'start (missing)' });
    const line = formatStatus(report([after]), { now: NOW.getTime() }).split('\n').find((l) => l.startsWith('web/api'))!;
    assert.match(line, /missing .* last error: image not known$/);
  });
});
