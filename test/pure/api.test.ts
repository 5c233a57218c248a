// The local API's pure parts: the health verdict from what the agent knows, how recent a pass
// must be for a resync schedule, and the checking of query strings (400s naming the parameter).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { healthVerdict, MIN_RECENT_MS, recentWithinMs, type HealthInput } from '../../src/api/health.js';
import { ApiError, eventsQuery, noQuery } from '../../src/api/query.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');

function health(over: Partial<HealthInput> = {}): HealthInput {
  return { now: NOW, lastPassAt: NOW - 5_000, startedAt: NOW - 600_000, recentWithinMs: 90_000, runtimes: { container: { ok: true, error: null } }, ...over };
}

describe('health verdict', () => {
  it('is 200 when the last pass is recent and every runtime lists', () => {
    const v = healthVerdict(health());
    assert.equal(v.status, 200);
    assert.equal(v.body.ok, true);
    assert.deepEqual(v.body.problems, []);
    assert.equal(v.body.last_pass_age_seconds, 5);
    assert.equal(v.body.recent_within_seconds, 90);
  });

  it('is 503 naming the runtime that does not list', () => {
    const v = healthVerdict(health({ runtimes: { container: { ok: false, error: 'podman ps: exit 1' }, unikernel: { ok: true, error: null } } }));
    assert.equal(v.status, 503);
    assert.deepEqual(v.body.problems, ['the container runtime does not list: podman ps: exit 1']);
  });

  it('is 503 when the last pass is older than the bound, and before the first pass', () => {
    const old = healthVerdict(health({ lastPassAt: NOW - 91_000 }));
    assert.equal(old.status, 503);
    assert.match(old.body.problems[0] ?? '', /ended 91 s ago, more than 90 s/);
    assert.equal(healthVerdict(health({ lastPassAt: NOW - 90_000 })).status, 200, 'exactly at the bound is still recent');
    const none = healthVerdict(health({ lastPassAt: undefined, startedAt: NOW - 3_000 }));
    assert.equal(none.status, 503);
    assert.match(none.body.problems[0] ?? '', /no reconcile pass has ended yet \(the agent started 3 s ago\)/);
    assert.equal(none.body.last_pass_at, null);
  });

  it('lists every problem at once', () => {
    const v = healthVerdict(health({ lastPassAt: undefined, runtimes: { container: { ok: false, error: 'x' }, unikernel: { ok: false, error: 'y' } } }));
    assert.equal(v.body.problems.length, 3);
  });
});

describe('how recent the last pass must be', () => {
  it('is three resync intervals, at least 60 s', () => {
    assert.equal(recentWithinMs('*/30 * * * * *'), 90_000);
    assert.equal(recentWithinMs('0 */5 * * * *'), 900_000);
    assert.equal(recentWithinMs('*/2 * * * * *'), MIN_RECENT_MS);
  });

  it('takes the largest gap of an irregular schedule', () => {
    // 09:00 and 17:00: gaps of 8 h and 16 h.
    assert.equal(recentWithinMs('0 0 9,17 * * *', new Date('2026-11-29T10:00:00')), 3 * 16 * 3_600_000);
  });
});

const q = (s: string): URLSearchParams => new URLSearchParams(s);

function refused(fn: () => unknown, parameter: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof ApiError && err.status === 400 && err.parameter === parameter && message.test(err.message));
}

describe('query strings', () => {
  it('events: defaults, and limit, service, follow read', () => {
    assert.deepEqual(eventsQuery(q('')), { limit: 20, service: undefined, follow: false });
    assert.deepEqual(eventsQuery(q('limit=5&service=web&follow=1')), { limit: 5, service: 'web', follow: true });
    assert.equal(eventsQuery(q('follow=false')).follow, false);
  });

  it('a bad value is refused naming the parameter, its rule and the value', () => {
    refused(() => eventsQuery(q('limit=abc')), 'limit', /'limit' must be a whole number from 1 to 100000, got 'abc'/);
    refused(() => eventsQuery(q('limit=0')), 'limit', /'limit' must be a whole number/);
    refused(() => eventsQuery(q('limit=2.5')), 'limit', /'limit' must be a whole number/);
    refused(() => eventsQuery(q('limit=100001')), 'limit', /'limit' must be a whole number/);
    refused(() => eventsQuery(q('follow=yes')), 'follow', /'follow' must be 1, 0, true or false, got 'yes'/);
    refused(() => eventsQuery(q('service=')), 'service', /'service' must not be empty/);
  });

  it('an unknown or repeated parameter is refused (a typo must not pass for a filter)', () => {
    refused(() => eventsQuery(q('servce=web')), 'servce', /unknown query parameter 'servce' \(this route takes limit, service, follow\)/);
    refused(() => eventsQuery(q('limit=1&limit=2')), 'limit', /given twice/);
    refused(() => noQuery(q('verbose=1')), 'verbose', /this route takes none/);
  });
});
