// Health checks, pure parts: the manifest's `health` table (kinds, defaults, refusals naming the
// field), the tracker's state machine (thresholds, start period), and the planner's `unhealthy`
// drift (restart under always/on-failure, report only under never, verdicts of other runs ignored).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { loadManifestText } from '../../src/manifest/load.js';
import { ValidationError } from '../../src/errors.js';
import { HealthSchema, type HealthCheck } from '../../src/manifest/health-schema.js';
import { specHash, attemptHash } from '../../src/identity.js';
import { afterProbe, initialState } from '../../src/agent/health/tracker.js';
import { healthTargets } from '../../src/agent/health/targets.js';
import { plan, type PlanInput } from '../../src/agent/planner.js';
import type { HealthVerdict } from '../../src/agent/health/verdict.js';
import { desired, observedFor, ok, record, spec, validRow } from '../helpers/spec.js';

const container = (health: string, extra = ''): string => `name = "web"\nruntime = "container"\n[[components]]\nname = "api"\nimage = "localhost/x:1"\n${extra}\n[components.health]\n${health}\n`;
const vm = (health: string, ports = ''): string => `name = "vms"\nruntime = "unikernel"\n[[components]]\nname = "g"\nmemory = 128\nkernel = "vmlinux"\ninitrd = "initrd.gz"\n${ports}\n[components.health]\n${health}\n`;

function refused(text: string): Array<{ field: string; rule: string }> {
  try {
    loadManifestText(text, 'toml', 'm.toml');
  } catch (err) {
    if (err instanceof ValidationError) return err.issues;
    throw err;
  }
  assert.fail('accepted');
}

describe('health: the manifest table', () => {
  it('fills the defaults', () => {
    const s = loadManifestText(container('kind = "tcp"\nport = 8080'), 'toml', 'm.toml');
    assert.deepEqual(s.components[0]!.health, { kind: 'tcp', port: 8080, interval_seconds: 10, timeout_seconds: 2, failure_threshold: 3, success_threshold: 1, start_period_seconds: 0 });
  });

  it('reads YAML and JSON the same', () => {
    const yaml = 'name: web\nruntime: container\ncomponents:\n  - name: api\n    image: localhost/x:1\n    health: {kind: http, port: 80, path: /healthz, expected_status: [200, 204]}\n';
    const json = JSON.stringify({ name: 'web', runtime: 'container', components: [{ name: 'api', image: 'localhost/x:1', health: { kind: 'exec', command: ['true'] } }] });
    assert.deepEqual(loadManifestText(yaml, 'yaml', 'm.yaml').components[0]!.health?.expected_status, [200, 204]);
    assert.deepEqual(loadManifestText(json, 'json', 'm.json').components[0]!.health?.command, ['true']);
  });

  it('refuses bad checks, naming the field', () => {
    const cases: Array<[string, string, RegExp]> = [
      [container('kind = "grpc"\nport = 1'), 'components[0].health.kind', /must be one of tcp, http, exec/],
      [container('kind = "tcp"\nport = 0'), 'components[0].health.port', /between 1 and 65535/],
      [container('kind = "tcp"'), 'components[0].health.port', /required for a tcp check/],
      [container('kind = "exec"\ncommand = []'), 'components[0].health.command', /required for a exec check/],
      [container('kind = "tcp"\nport = 1\ninterval_seconds = 0.5'), 'components[0].health.interval_seconds', /at least 1 s/],
      [container('kind = "tcp"\nport = 1\nfailure_threshold = 0'), 'components[0].health.failure_threshold', /at least 1/],
      [container('kind = "tcp"\nport = 1\npath = "/x"'), 'components[0].health.path', /only for http/],
      [container('kind = "http"\nport = 1\nexpected_status = [399, 200]'), 'components[0].health.expected_status', /low <= high/],
      [container('kind = "tcp"\nport = 1\nintervall_seconds = 2'), 'components[0].health.intervall_seconds', /did you mean `interval_seconds`/],
      [vm('kind = "tcp"\nport = 8080'), 'components[0].health.port', /declared tcp ports \(guest none declared\)/],
      [vm('kind = "http"\nport = 8080', 'ports = [{ guest = 9090 }]'), 'components[0].health.port', /guest 9090/],
    ];
    for (const [text, field, rule] of cases) {
      const issues = refused(text);
      const hit = issues.find((i) => i.field === field);
      assert.ok(hit, `${field} not named in ${JSON.stringify(issues)}`);
      assert.match(hit.rule, rule);
    }
  });

  it('accepts a VM check on a declared port, and a container check on any port', () => {
    assert.equal(loadManifestText(vm('kind = "http"\nport = 8080', 'ports = [{ guest = 8080 }]'), 'toml', 'm.toml').components[0]!.health?.port, 8080);
    assert.equal(loadManifestText(container('kind = "tcp"\nport = 5432'), 'toml', 'm.toml').components[0]!.health?.port, 5432);
  });

  it('a changed check does not change the spec hash (no replace), only the attempt hash', () => {
    const a = spec('web', 'api');
    const b = spec('web', 'api', { health: HealthSchema().parse({ kind: 'tcp', port: 80 }) });
    assert.equal(specHash(a), specHash(b));
    assert.notEqual(attemptHash(a), attemptHash(b));
  });
});

const CHECK: HealthCheck = HealthSchema().parse({ kind: 'tcp', port: 80, failure_threshold: 3, success_threshold: 2, start_period_seconds: 10 });
const fail = { ok: false, output: 'refused' };
const pass = { ok: true, output: 'connected' };

describe('health: the tracker', () => {
  it('needs success_threshold successes to become healthy and failure_threshold failures to become unhealthy', () => {
    let s = initialState(0);
    const t0 = 100_000; // past the start period
    s = afterProbe(s, pass, CHECK, 0, t0).state;
    assert.equal(s.status, 'starting');
    let step = afterProbe(s, pass, CHECK, 0, t0 + 1);
    assert.equal(step.state.status, 'healthy');
    assert.ok(step.changed);
    s = step.state;
    for (let i = 0; i < 2; i++) s = afterProbe(s, fail, CHECK, 0, t0 + 2 + i).state;
    assert.equal(s.status, 'healthy', 'two failures are below the threshold');
    s = afterProbe(s, pass, CHECK, 0, t0 + 5).state;
    assert.equal(s.failures, 0, 'a success resets the count');
    for (let i = 0; i < 2; i++) s = afterProbe(s, fail, CHECK, 0, t0 + 6 + i).state;
    step = afterProbe(s, fail, CHECK, 0, t0 + 9);
    assert.equal(step.state.status, 'unhealthy');
    assert.ok(step.changed);
    assert.equal(step.state.output, 'refused');
    assert.equal(step.state.since, t0 + 9);
  });

  it('does not count failures during the start period', () => {
    let s = initialState(0);
    for (let i = 0; i < 9; i++) s = afterProbe(s, fail, CHECK, 0, i * 1000).state;
    assert.equal(s.status, 'starting');
    assert.equal(s.failures, 0);
    assert.equal(s.output, 'refused');
    for (let i = 0; i < 3; i++) s = afterProbe(s, fail, CHECK, 0, 10_000 + i).state;
    assert.equal(s.status, 'unhealthy');
  });
});

describe('health: the planner', () => {
  const check = HealthSchema().parse({ kind: 'http', port: 80 });
  const verdict = (o: { id: string }, status: HealthVerdict['status'] = 'unhealthy'): HealthVerdict => ({ status, output: 'GET http://127.0.0.1:80/: 503 (expected 200-399)', run: o.id, since: '2024-05-01T11:59:00.000Z', failures: 3 });
  const input = (restart: 'always' | 'on-failure' | 'never', v?: (o: { id: string }) => HealthVerdict): PlanInput => {
    const s = spec('web', 'api', { restart, health: check });
    const o = observedFor(s);
    return { desired: desired([validRow(s)]), observed: { container: ok(o) }, instances: [record(s, { handle: o.id })], now: new Date('2024-05-01T12:00:00Z'), stableAfterMs: 30_000, health: new Map(v ? [['web-api', v(o)]] : []) };
  };

  it('restarts an unhealthy workload under always and on-failure, stopping it first', () => {
    for (const restart of ['always', 'on-failure'] as const) {
      const r = plan(input(restart, (o) => verdict(o)));
      const a = r.assessments[0]!;
      assert.equal(a.drift, 'unhealthy');
      assert.match(a.reason, /^unhealthy: http check failed 3x: GET .*: 503/);
      assert.equal(a.health?.status, 'unhealthy');
      assert.equal(r.actions.length, 1);
      const act = r.actions[0]!;
      assert.equal(act.type, 'restart');
      assert.ok(act.type === 'restart' && act.stopFirst);
    }
  });

  it('only reports under never', () => {
    const r = plan(input('never', (o) => verdict(o)));
    assert.equal(r.assessments[0]!.drift, 'unhealthy');
    assert.match(r.assessments[0]!.reason, /restart policy never leaves it running$/);
    assert.deepEqual(r.actions, []);
  });

  it('ignores a verdict about another run, and healthy or starting ones', () => {
    assert.equal(plan(input('always', () => ({ ...verdict({ id: 'older' }) }))).assessments[0]!.drift, 'in-sync');
    for (const status of ['healthy', 'starting'] as const) {
      const r = plan(input('always', (o) => verdict(o, status)));
      assert.equal(r.assessments[0]!.drift, 'in-sync');
      assert.equal(r.assessments[0]!.health?.status, status);
    }
    assert.equal(plan(input('always')).assessments[0]!.health, undefined);
  });

  it('the monitor probes running components with a check, VMs at their forwarded port', () => {
    const c = spec('web', 'api', { health: check });
    const v = spec('web', 'vm', { runtime: 'unikernel', ports: [{ guest: 80, protocol: 'tcp' }], health: check });
    const p = plan({ desired: desired([validRow(c), validRow(v), validRow(spec('web', 'plain'))]), observed: { container: ok(observedFor(c), observedFor(spec('web', 'plain'))), unikernel: ok(observedFor(v, { address: '127.0.0.1:2222', network: 'slirp' })) }, instances: [], now: new Date(), stableAfterMs: 0 });
    const targets = healthTargets({ assessments: p.assessments, desired: desired([validRow(c), validRow(v)]) }, [{ kind: 'host_port', value: '20080', service: 'web', component: 'vm', purpose: 'tcp/80' }]);
    assert.deepEqual(targets.map((t) => [t.workload, t.endpoint]), [['web-api', undefined], ['web-vm', { host: '127.0.0.1', port: 20080, slirp: true }]]);
  });
});
