// Host-port arithmetic for SLIRP forwards: preferred SSH ports, the wrapping search, collisions.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  candidatePorts,
  nameHash,
  pickPort,
  preferredSshPort,
  SERVICE_PORT_RANGE,
  SSH_PORT_BASE,
  SSH_PORT_RANGE,
  SSH_PORT_SPREAD,
} from '../../src/agent/ports.js';

/** The rule computed independently of the module: 10022 + (first 4 bytes of sha256, BE) % 100. */
const expectedPreferred = (name: string): number => 10022 + (createHash('sha256').update(name).digest().readUInt32BE(0) % 100);

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `svc-vm${i}`);

describe('preferredSshPort', () => {
  it('is 10022 + nameHash % 100', () => {
    assert.equal(SSH_PORT_BASE, 10022);
    assert.equal(SSH_PORT_SPREAD, 100);
    for (const n of ['web-api', 'db-primary', 'a', 'svc-vm7', 'x-'.repeat(20)]) {
      assert.equal(nameHash(n), createHash('sha256').update(n).digest().readUInt32BE(0), `nameHash(${n})`);
      assert.equal(preferredSshPort(n), expectedPreferred(n), `preferredSshPort(${n})`);
      assert.equal(preferredSshPort(n), SSH_PORT_BASE + (nameHash(n) % SSH_PORT_SPREAD));
    }
  });

  it('is deterministic', () => {
    for (const n of names(50)) assert.equal(preferredSshPort(n), preferredSshPort(n));
  });

  it('always lies in 10022..10121, inside the SSH range', () => {
    const seen = new Set<number>();
    for (const n of names(2000)) {
      const p = preferredSshPort(n);
      assert.ok(Number.isInteger(p) && p >= 10022 && p <= 10121, `${n} -> ${p}`);
      assert.ok(p >= SSH_PORT_RANGE.first && p <= SSH_PORT_RANGE.last);
      seen.add(p);
    }
    // With 2000 names every one of the 100 slots is hit, so both ends of the spread are reachable.
    assert.equal(seen.size, 100);
    assert.ok(seen.has(10022) && seen.has(10121));
  });

  it('spreads names over the 100 slots', () => {
    // 50 names into 100 slots: about 39 distinct expected; far fewer means the hash is not used.
    assert.ok(new Set(names(50).map(preferredSshPort)).size >= 30);
  });
});

describe('candidatePorts', () => {
  const small = { first: 5, last: 9 };

  it('starts at the preferred port and wraps inside the range', () => {
    assert.deepEqual([...candidatePorts(7, small)], [7, 8, 9, 5, 6]);
    assert.deepEqual([...candidatePorts(5, small)], [5, 6, 7, 8, 9]);
    assert.deepEqual([...candidatePorts(9, small)], [9, 5, 6, 7, 8]);
  });

  it('a one-port range yields that port once', () => {
    assert.deepEqual([...candidatePorts(4242, { first: 4242, last: 4242 })], [4242]);
  });

  it('a preferred port outside the range starts at range.first', () => {
    assert.deepEqual([...candidatePorts(4, small)], [5, 6, 7, 8, 9]);
    assert.deepEqual([...candidatePorts(10, small)], [5, 6, 7, 8, 9]);
    assert.deepEqual([...candidatePorts(0, small)], [5, 6, 7, 8, 9]);
    // The service range: a guest port with no fixed host port searches from 20000.
    assert.equal(candidatePorts(80, SERVICE_PORT_RANGE).next().value, SERVICE_PORT_RANGE.first);
  });

  it('yields every port of the SSH range exactly once, from the preferred port, wrapping', () => {
    const preferred = 10998;
    const all = [...candidatePorts(preferred, SSH_PORT_RANGE)];
    const size = SSH_PORT_RANGE.last - SSH_PORT_RANGE.first + 1;
    assert.equal(size, 978);
    assert.equal(all.length, size);
    assert.equal(new Set(all).size, size, 'no port is yielded twice');
    assert.deepEqual(all.slice(0, 4), [10998, 10999, 10022, 10023]);
    assert.equal(all.at(-1), 10997);
    for (const p of all) assert.ok(p >= SSH_PORT_RANGE.first && p <= SSH_PORT_RANGE.last, `${p} in range`);
  });

  it('each step is the previous port + 1, except the one wrap back to range.first', () => {
    const all = [...candidatePorts(10100, SSH_PORT_RANGE)];
    let wraps = 0;
    for (let i = 1; i < all.length; i++) {
      if (all[i] === all[i - 1]! + 1) continue;
      wraps++;
      assert.equal(all[i - 1], SSH_PORT_RANGE.last);
      assert.equal(all[i], SSH_PORT_RANGE.first);
    }
    assert.equal(wraps, 1);
  });
});

describe('pickPort', () => {
  const small = { first: 5, last: 9 };

  it('returns the preferred port when it is free', () => {
    assert.equal(pickPort(7, small, () => false), 7);
  });

  it('skips taken ports, wrapping around', () => {
    const taken = new Set([7, 8]);
    assert.equal(pickPort(7, small, (p) => taken.has(p)), 9);
    taken.add(9);
    assert.equal(pickPort(7, small, (p) => taken.has(p)), 5);
    taken.add(5);
    assert.equal(pickPort(7, small, (p) => taken.has(p)), 6);
  });

  it('asks about each port at most once, in candidate order', () => {
    const asked: number[] = [];
    assert.equal(
      pickPort(8, small, (p) => {
        asked.push(p);
        return p !== 6;
      }),
      6,
    );
    assert.deepEqual(asked, [8, 9, 5, 6]);
  });

  it('returns undefined when every port is taken', () => {
    assert.equal(pickPort(7, small, () => true), undefined);
    let calls = 0;
    assert.equal(
      pickPort(10050, SSH_PORT_RANGE, () => {
        calls++;
        return true;
      }),
      undefined,
    );
    assert.equal(calls, SSH_PORT_RANGE.last - SSH_PORT_RANGE.first + 1, 'the whole range was tried');
  });
});

describe('preferred SSH ports collide (birthday), pickPort resolves it', () => {
  it('12-20 names already share preferred ports', () => {
    for (const n of [12, 16, 20]) {
      const ports = names(n).map(preferredSshPort);
      assert.ok(new Set(ports).size < n, `${n} names: expected a collision among ${ports.join(' ')}`);
    }
  });

  it('pickPort with a growing taken-set gives every VM a distinct port', () => {
    const list = names(20);
    const taken = new Set<number>();
    const chosen = new Map<string, number>();
    let moved = 0;
    for (const n of list) {
      const preferred = preferredSshPort(n);
      const p = pickPort(preferred, SSH_PORT_RANGE, (x) => taken.has(x));
      assert.ok(p !== undefined, `${n} got a port`);
      assert.ok(p >= SSH_PORT_RANGE.first && p <= SSH_PORT_RANGE.last);
      assert.ok(!taken.has(p), `${n}: ${p} was already taken`);
      if (taken.has(preferred)) {
        moved++;
        assert.notEqual(p, preferred);
        // The next free port upward: every port between preferred and p was taken.
        for (let x = preferred; x < p; x++) assert.ok(taken.has(x), `${x} skipped though free`);
      } else {
        assert.equal(p, preferred, `${n}: a free preferred port is used as is`);
      }
      taken.add(p);
      chosen.set(n, p);
    }
    assert.equal(new Set(chosen.values()).size, list.length, 'all ports distinct');
    assert.ok(moved > 0, 'some VM had to move off its preferred port');
  });
});
