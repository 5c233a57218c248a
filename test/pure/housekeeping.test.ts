// The housekeeping plan() returns besides its actions (pure): what it decides for the registry
// (failure counts, leases, records) and the host (garbage, isolation rules), what it leaves to
// components in flux, and the network each VM start goes on. No registry, no runtime.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { plan, type PlanInput, type PlanResult } from '../../src/agent/planner.js';
import type { Housekeeping } from '../../src/agent/housekeeping.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';
import type { Lease } from '../../src/registry/index.js';
import { desired, failed, observedFor, ok, rawObserved, record, service, spec, validRow } from '../helpers/spec.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const api = spec('web', 'api');
const box = spec('web', 'box', { runtime: 'unikernel', memory: 128, cmd: [], kernel: 'vmlinux' });
const BRIDGE = { name: 'mcp-br0', present: true, isolated: true, otherAgents: [] };

function run(over: Partial<PlanInput>): PlanResult {
  return plan({ desired: desired([validRow(api), validRow(box)]), observed: { container: ok(), unikernel: ok() }, instances: [], now: NOW, stableAfterMs: 30_000, leases: [], ...over });
}

/** Each item as `type:what`, sorted. */
const items = (r: PlanResult): string[] => r.housekeeping.map(describeItem).sort();
function describeItem(h: Housekeeping): string {
  switch (h.type) {
    case 'release-lease': return `${h.type}:${h.lease.kind} ${h.lease.value}`;
    case 'collect-garbage': return `${h.type}:${h.runtime}`;
    case 'isolate': return `${h.type}:${h.bridge}`;
    case 'lease-conflict': return `${h.type}:${h.workload} ${h.address} (${h.leasedTo})`;
    case 'retake-lease': return `${h.type}:${h.workload} ${h.address}`;
    default: return `${h.type}:${h.workload}`;
  }
}
const lease = (component: string, value: string, kind: Lease['kind'] = 'ip'): Lease => ({ kind, value, service: 'web', component, purpose: kind === 'ip' ? 'bridge' : 'ssh' });
const onBridge = (s: ComponentSpec, address: string) => observedFor(s, { id: 'pid:7', network: 'bridge', address });

describe('plan: housekeeping', () => {
  it('resets the failure count of a workload stable and in sync, unless it is in flux', () => {
    const observed = { container: ok(observedFor(api)), unikernel: ok() };
    const instances = [record(api, { failures: 2 })];
    assert.deepEqual(items(run({ observed, instances })), ['reset-failures:web-api']);
    assert.deepEqual(items(run({ observed, instances, busy: new Set(['web/api']) })), []);
  });

  it('takes back the lease of a running bridge VM, reports one leased to another, gives back the unneeded', () => {
    const observed = { container: ok(), unikernel: ok(onBridge(box, '10.99.0.3')) };
    const stray = lease('gone', '10.99.0.9');
    assert.deepEqual(items(run({ observed, leases: [stray] })), ['release-lease:ip 10.99.0.9', 'retake-lease:web-box 10.99.0.3']);
    assert.deepEqual(items(run({ observed, leases: [lease('other', '10.99.0.3')] })), ['lease-conflict:web-box 10.99.0.3 (web/other)', 'release-lease:ip 10.99.0.3']);
    assert.deepEqual(items(run({ observed, leases: [lease('box', '10.99.0.3')] })), [], 'in order');
  });

  it('keeps the leases of a desired component that is not running, and of one in flux', () => {
    const observed = { container: ok(), unikernel: ok() };
    assert.deepEqual(items(run({ observed, leases: [lease('box', '10.99.0.3'), lease('api', '40000', 'host_port')] })), []);
    const gone = run({ desired: desired([]), observed, leases: [lease('box', '10.99.0.3'), lease('api', '40000', 'host_port')], busy: new Set(['web/box']) });
    assert.deepEqual(items(gone), ['release-lease:host_port 40000']);
  });

  it('decides nothing about leases or records while a runtime could not list, nor without the lease table', () => {
    const observed = { container: ok(), unikernel: failed('qemu: timed out') };
    const r = run({ desired: desired([]), observed, leases: [lease('box', '10.99.0.3')], instances: [record(api, { handle: null })] });
    assert.deepEqual(items(r), []);
    const noTable = run({ observed: { container: ok(), unikernel: ok(onBridge(box, '10.99.0.3')) }, leases: undefined });
    assert.deepEqual(items(noTable), []);
  });

  it('forgets a record nothing stands for', () => {
    const old = spec('old', 'x');
    assert.deepEqual(items(run({ instances: [record(old, { handle: null, failures: 3 })] })), ['forget-instance:old-x']);
    assert.deepEqual(items(run({ instances: [record(old, { handle: null })], busy: new Set(['old/x']) })), []);
  });

  it('collects garbage of the runtimes listed in full only', () => {
    assert.deepEqual(items(run({ listedInFull: ['unikernel'] })), ['collect-garbage:unikernel']);
    assert.deepEqual(items(run({ listedInFull: [] })), []);
  });

  it('loads the isolation rules again when the bridge is there without them, once per fact', () => {
    const missing = { ...BRIDGE, isolated: false, isolationDetail: 'tables missing', rulesLoadable: true };
    assert.deepEqual(items(run({ bridge: missing })), ['isolate:mcp-br0']);
    assert.deepEqual(items(run({ bridge: { ...missing, repairError: 'busy' } })), []);
    assert.deepEqual(items(run({ bridge: BRIDGE })), []);
    assert.deepEqual(items(run({ bridge: { name: 'mcp-br0', present: false } })), []);
  });
});

describe('plan: actions and what is in flux', () => {
  it('a component in flux is assessed but gets no action; an unlabelled orphan counts as its workload', () => {
    const junk = rawObserved({ name: 'junk' });
    const r = run({ desired: desired([validRow(api)], [service('web')]), observed: { container: ok(junk) }, busy: new Set(['web/api', 'workload:junk']) });
    assert.deepEqual(r.actions, []);
    assert.deepEqual(r.assessments.map((a) => [a.workload, a.action?.type]), [['junk', 'remove'], ['web-api', 'start']]);
  });

  it('a VM start carries the network chosen from the bridge fact; a container start carries none', () => {
    const networkOf = (r: PlanResult, w: string) => {
      const a = r.actions.find((x) => x.workload === w);
      return a && 'network' in a ? a.network : undefined;
    };
    const up = run({ bridge: BRIDGE });
    assert.deepEqual(up.actions.map((a) => `${a.type}:${a.workload}`), ['start:web-api', 'start:web-box']);
    assert.deepEqual(networkOf(up, 'web-box'), { mode: 'bridge' });
    assert.equal(networkOf(up, 'web-api'), undefined);
    assert.deepEqual(networkOf(run({ bridge: { name: 'mcp-br0', present: false } }), 'web-box'), { mode: 'slirp' });
  });
});
