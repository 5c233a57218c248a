// The VM network rules (pure): is the bridge usable (bridgeUse), which network a start goes on
// (vmNetwork, networkAfterRepair), and is a running VM on the network its spec asks for (networkDrift)?
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { bridgeUse, isolationDue, networkAfterRepair, networkDrift, vmNetwork, type BridgeFact } from '../../src/agent/network-drift.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';
import type { Observed } from '../../src/runtime/types.js';

const vm = (network: ComponentSpec['network']): ComponentSpec => ({
  service: 'edge', name: 'fw', runtime: 'unikernel', kernel: 'vmlinux', cmd: [], env: {}, memory: 64, vcpus: undefined, network, ports: [], volumes: [], restart: 'always',
}) as unknown as ComponentSpec;
const running = (network: string, networkProblem?: string): Observed => ({
  runtime: 'unikernel', name: 'edge-fw', id: 'pid:1', key: { service: 'edge', component: 'fw' }, specHash: 'h', state: 'running', exitCode: undefined, startedAt: undefined, address: undefined, network, networkProblem,
});
const UP = { name: 'mcp-br0', present: true };
const DOWN = { name: 'mcp-br0', present: false };

describe('networkDrift', () => {
  it('auto follows the bridge: SLIRP while it is absent, the bridge while it is there', () => {
    assert.equal(networkDrift(vm('auto'), running('slirp'), DOWN), undefined);
    assert.equal(networkDrift(vm('auto'), running('bridge'), UP), undefined);
    assert.deepEqual(networkDrift(vm('auto'), running('slirp'), UP), { reason: 'network auto: bridge mcp-br0 is there now, the VM runs on SLIRP', fixable: true });
    assert.deepEqual(networkDrift(vm('auto'), running('bridge'), DOWN), { reason: "network auto: bridge mcp-br0 is gone, the VM's TAP leads nowhere", fixable: true });
  });

  it('slirp stays on SLIRP whatever the bridge does', () => {
    assert.equal(networkDrift(vm('slirp'), running('slirp'), UP), undefined);
    assert.equal(networkDrift(vm('slirp'), running('slirp'), DOWN), undefined);
  });

  it('bridge without the bridge: drift, but no replace can fix it', () => {
    const d = networkDrift(vm('bridge'), running('bridge', 'its TAP tap-1 is on no bridge'), DOWN);
    assert.equal(d?.fixable, false);
    assert.match(d!.reason, /bridge mcp-br0 is gone, the VM is cut off \(agent net up/);
  });

  it('a TAP off its bridge (the bridge was made again) is fixable drift, for bridge and auto', () => {
    for (const mode of ['bridge', 'auto'] as const) {
      assert.deepEqual(networkDrift(vm(mode), running('bridge', 'its TAP tap-1 is on no bridge (was mcp-br0)'), UP), { reason: 'unreachable: its TAP tap-1 is on no bridge (was mcp-br0)', fixable: true });
    }
  });

  it('checks nothing without a bridge fact, for containers, or for a VM of unknown network', () => {
    assert.equal(networkDrift(vm('auto'), running('slirp'), undefined), undefined);
    assert.equal(networkDrift({ ...vm('none'), runtime: 'container' } as ComponentSpec, running('slirp'), UP), undefined);
    assert.equal(networkDrift(vm('auto'), running('weird'), UP), undefined);
  });
  it('a bridge without its isolation rules: no VM moves onto it, VMs on it are reported, none is restarted for it', () => {
    const bare = { name: 'mcp-br0', present: true, isolated: false, isolationDetail: 'tables missing: run agent net up' };
    assert.equal(networkDrift(vm('auto'), running('slirp'), bare), undefined, 'auto stays on SLIRP');
    for (const mode of ['auto', 'bridge'] as const) {
      assert.deepEqual(networkDrift(vm(mode), running('bridge'), bare), {
        reason: 'not isolated: the rules of bridge mcp-br0 are not in place (tables missing: run agent net up); each pass loads them again, agent net up does it now',
        fixable: false,
      });
    }
    assert.equal(networkDrift(vm('auto'), running('bridge'), { ...bare, isolated: true }), undefined);
  });

  it('a bridge shared with another agent: no VM moves onto it, VMs on it are reported, none is restarted for it', () => {
    const shared = { name: 'mcp-br0', present: true, isolated: true, otherAgents: ['a1', 'b2'] };
    assert.equal(networkDrift(vm('auto'), running('slirp'), shared), undefined, 'auto stays on SLIRP');
    for (const mode of ['auto', 'bridge'] as const) {
      assert.deepEqual(networkDrift(vm(mode), running('bridge'), shared), {
        reason: "shared bridge: mcp-br0 also carries VMs of agent a1, b2, whose addresses may collide with this agent's; give each agent its own bridge",
        fixable: false,
      });
    }
    assert.equal(networkDrift(vm('auto'), running('bridge'), { ...shared, otherAgents: [] }), undefined);
    assert.deepEqual(networkDrift(vm('auto'), running('slirp'), { ...shared, otherAgents: [] })?.fixable, true, 'no other agent: auto moves onto it');
  });
});

describe('bridgeUse and vmNetwork: one rule for drift and for a start', () => {
  const OURS: BridgeFact = { name: 'mcp-br0', present: true, isolated: true, otherAgents: [] };
  const cases: Array<[string, BridgeFact | undefined, string]> = [
    ['no fact', undefined, 'the bridge was not looked at this pass'],
    ['ip cannot tell', { name: 'mcp-br0', present: undefined }, 'cannot tell whether the bridge mcp-br0 exists (ip did not answer)'],
    ['absent', { name: 'mcp-br0', present: false }, 'the bridge mcp-br0 does not exist (agent net up creates it)'],
    ['rules that nft cannot load', { ...OURS, isolated: false, isolationDetail: 'nft: not found', rulesLoadable: false }, 'the isolation rules of mcp-br0 are not in place and cannot be loaded: nft: not found'],
    ['rules whose reload failed', { ...OURS, isolated: false, rulesLoadable: true, repairError: 'busy' }, 'the isolation rules of mcp-br0 are not in place and cannot be loaded: busy'],
    ['shared', { ...OURS, otherAgents: ['a1'] }, 'the bridge mcp-br0 carries VMs of another agent (a1): two registries on one bridge would lease the same addresses'],
    ['sharing unknown', { ...OURS, otherAgents: undefined, sharingUnknown: 'cannot list the ports of mcp-br0' }, 'cannot tell whether another agent uses mcp-br0: cannot list the ports of mcp-br0'],
  ];

  it('refuses, saying why; auto then goes on SLIRP and bridge is refused with that reason', () => {
    for (const [what, fact, why] of cases) {
      assert.deepEqual(bridgeUse(fact), { usable: false, why }, what);
      assert.deepEqual(vmNetwork(vm('auto'), fact), { mode: 'slirp' }, what);
      assert.deepEqual(vmNetwork(vm('bridge'), fact), { mode: 'refused', why }, what);
      assert.deepEqual(vmNetwork(vm('slirp'), fact), { mode: 'slirp' }, what);
    }
  });

  it('a bridge of ours with its rules: the bridge for auto and bridge, never for slirp', () => {
    assert.deepEqual(bridgeUse(OURS), { usable: true, afterRepair: false });
    assert.deepEqual(vmNetwork(vm('auto'), OURS), { mode: 'bridge' });
    assert.deepEqual(vmNetwork(vm('bridge'), OURS), { mode: 'bridge' });
    assert.deepEqual(vmNetwork(vm('slirp'), OURS), { mode: 'slirp' });
  });

  it('sharing unknown: the safe side, for drift too (a SLIRP VM is not moved onto it, one on it is not replaced)', () => {
    const unknown: BridgeFact = { ...OURS, otherAgents: undefined, sharingUnknown: 'ip failed' };
    assert.equal(networkDrift(vm('auto'), running('slirp'), unknown), undefined);
    assert.equal(networkDrift(vm('auto'), running('bridge'), unknown), undefined);
  });

  it('rules missing that this pass loads: the bridge, unless the reload fails (auto: SLIRP; bridge: refused)', () => {
    const missing: BridgeFact = { ...OURS, isolated: false, isolationDetail: 'tables missing', rulesLoadable: true };
    assert.equal(isolationDue(missing), true);
    assert.deepEqual(bridgeUse(missing), { usable: true, afterRepair: true });
    const a = vmNetwork(vm('auto'), missing);
    const b = vmNetwork(vm('bridge'), missing);
    assert.deepEqual([a, b], [{ mode: 'bridge', ifRepairFails: 'slirp' }, { mode: 'bridge', ifRepairFails: 'refuse' }]);
    assert.deepEqual(networkAfterRepair(a, 'mcp-br0', undefined), a, 'the reload worked');
    assert.deepEqual(networkAfterRepair(a, 'mcp-br0', 'busy'), { mode: 'slirp' });
    assert.deepEqual(networkAfterRepair(b, 'mcp-br0', 'busy'), { mode: 'refused', why: 'the isolation rules of mcp-br0 are not in place and cannot be loaded: busy' });
    assert.deepEqual(networkAfterRepair({ mode: 'bridge' }, 'mcp-br0', 'busy'), { mode: 'bridge' }, 'a start that did not need the reload');
    // a running VM is not moved onto a bridge whose rules are being loaded: the next pass moves it
    assert.equal(networkDrift(vm('auto'), running('slirp'), missing), undefined);
    assert.equal(isolationDue({ ...missing, repairError: 'busy' }), false, 'not tried again on the same fact');
    assert.equal(isolationDue(OURS), false);
    assert.equal(isolationDue({ name: 'mcp-br0', present: false }), false);
  });
});
