// networkDrift (pure): is a running VM on the network its spec asks for, given the bridge now?
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { networkDrift } from '../../src/agent/network-drift.js';
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
