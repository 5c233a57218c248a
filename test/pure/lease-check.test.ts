// mustHoldLease (pure): which bridge VMs a pass re-takes the address lease of.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { mustHoldLease } from '../../src/agent/lease-check.js';
import type { Assessment } from '../../src/agent/planner.js';
import { assessment } from '../helpers/spec.js';

function vm(over: Partial<Assessment> = {}): Assessment {
  return assessment({ key: { service: 'web', component: 'vm' }, workload: 'web-vm', runtime: 'unikernel', address: '10.99.0.2', network: 'bridge', handle: 'pid:4242', ...over });
}
const idle = new Set<string>();

describe('mustHoldLease', () => {
  it('a bridge VM that runs, or boots with a live QEMU, holds its lease', () => {
    assert.equal(mustHoldLease(vm(), idle), true);
    assert.equal(mustHoldLease(vm({ observed: 'starting' }), idle), true);
  });
  it('not a VM whose start just failed: exited, or starting with no QEMU', () => {
    assert.equal(mustHoldLease(vm({ observed: 'exited', handle: 'exited:web-vm' }), idle), false);
    assert.equal(mustHoldLease(vm({ observed: 'starting', handle: 'exited:web-vm' }), idle), false);
    assert.equal(mustHoldLease(vm({ observed: 'starting', handle: undefined }), idle), false);
  });
  it('not while an action is under way for it (the action owns the lease)', () => {
    assert.equal(mustHoldLease(vm(), new Set(['web/vm'])), false);
    assert.equal(mustHoldLease(vm(), new Set(['web/other'])), true);
  });
  it('not off the bridge, without an address, absent or unknown', () => {
    assert.equal(mustHoldLease(vm({ network: 'slirp', address: '127.0.0.1:10022' }), idle), false);
    assert.equal(mustHoldLease(vm({ address: undefined }), idle), false);
    assert.equal(mustHoldLease(vm({ observed: 'absent', handle: undefined }), idle), false);
    assert.equal(mustHoldLease(vm({ observed: 'unknown' }), idle), false);
  });
});
