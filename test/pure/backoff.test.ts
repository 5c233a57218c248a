// Exponential backoff: pure arithmetic.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { backoffDelayMs, nextAttemptAt, type BackoffPolicy } from '../../src/agent/backoff.js';

const P: BackoffPolicy = { baseMs: 1000, maxMs: 300_000 };

describe('backoffDelayMs', () => {
  it('starts at base and doubles with each failure', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, P)),
      [1000, 2000, 4000, 8000, 16000, 32000],
    );
  });

  it('is capped at max', () => {
    assert.equal(backoffDelayMs(9, P), 256_000);
    assert.equal(backoffDelayMs(10, P), 300_000); // 512000 capped
    assert.equal(backoffDelayMs(11, P), 300_000);
    assert.equal(backoffDelayMs(30, P), 300_000);
  });

  it('never decreases as failures grow', () => {
    let prev = 0;
    for (let n = 1; n <= 200; n++) {
      const d = backoffDelayMs(n, P);
      assert.ok(d >= prev, `delay(${n})=${d} < delay(${n - 1})=${prev}`);
      assert.ok(d <= P.maxMs);
      prev = d;
    }
  });

  it('is 0 when there have been no failures', () => {
    assert.equal(backoffDelayMs(0, P), 0);
    assert.equal(backoffDelayMs(-1, P), 0);
    assert.equal(backoffDelayMs(-1000, P), 0);
  });

  it('does not overflow for huge failure counts', () => {
    for (const n of [1024, 1025, 10_000, Number.MAX_SAFE_INTEGER, Infinity]) {
      const d = backoffDelayMs(n, P);
      assert.ok(Number.isFinite(d), `delay(${n}) is ${d}`);
      assert.equal(d, 300_000, `delay(${n})`);
    }
  });

  it('reaches a very large max with a huge failure count, still finite', () => {
    const big: BackoffPolicy = { baseMs: 10, maxMs: Number.MAX_SAFE_INTEGER };
    const d = backoffDelayMs(1e9, big);
    assert.ok(Number.isFinite(d));
    assert.ok(d > 0);
    assert.ok(d <= Number.MAX_SAFE_INTEGER);
  });

  it('stays finite even with no effective max (the exponent itself is capped)', () => {
    const unbounded: BackoffPolicy = { baseMs: 1000, maxMs: Infinity };
    for (const n of [41, 1100, 1e6, Infinity]) {
      const d = backoffDelayMs(n, unbounded);
      assert.ok(Number.isFinite(d), `delay(${n}) is ${d}`);
      assert.equal(d, 1000 * 2 ** 40);
    }
    assert.equal(backoffDelayMs(40, unbounded), 1000 * 2 ** 39);
    assert.ok(!Number.isNaN(nextAttemptAt(new Date(0), 1e6, unbounded).getTime()));
  });

  it('is max when base already exceeds it', () => {
    assert.equal(backoffDelayMs(1, { baseMs: 5000, maxMs: 2000 }), 2000);
  });
});

describe('nextAttemptAt', () => {
  it('is now plus the delay', () => {
    const now = new Date('2024-05-01T12:00:00.000Z');
    assert.equal(nextAttemptAt(now, 3, P).toISOString(), '2024-05-01T12:00:04.000Z');
    assert.equal(nextAttemptAt(now, 100, P).toISOString(), '2024-05-01T12:05:00.000Z');
    assert.equal(nextAttemptAt(now, 0, P).getTime(), now.getTime());
  });

  it('gives a valid date for huge failure counts', () => {
    const d = nextAttemptAt(new Date('2024-05-01T12:00:00.000Z'), Number.MAX_SAFE_INTEGER, P);
    assert.ok(!Number.isNaN(d.getTime()));
    assert.equal(d.toISOString(), '2024-05-01T12:05:00.000Z');
  });
});
