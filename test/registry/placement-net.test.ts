// Where placement puts a VM's network, on a real registry file and a fake HostNet
// (test/helpers/fake-host-net.ts): the bridge only when it exists with its isolation rules (loaded
// again when missing) and no other agent's VMs; SLIRP otherwise for `auto`, an error for `bridge`.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { placeVm } from '../../src/agent/placement.js';
import { ComponentSpecSchema } from '../../src/manifest/schema.js';
import { Registry } from '../../src/registry/index.js';
import { FakeHostNet } from '../helpers/fake-host-net.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-placement-net-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'id_ed25519'), 'not a real key: placement only checks it can be read\n');
const PATHS = { home: dir, vmDir: join(dir, 'vm'), imagesDirs: [join(dir, 'images')], sshKey: join(dir, 'id_ed25519') };
const BRIDGE = { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' };
const KEY = { service: 'web', component: 'vm' };
const spec = (network: 'auto' | 'bridge' | 'slirp') =>
  ComponentSpecSchema.parse({ service: 'web', name: 'vm', runtime: 'unikernel', network, memory: 128, kernel: 'vmlinux', initrd: 'initrd.cpio', ssh_host_key: 'ssh-ed25519 AAAAC3Nza' });

let n = 0;
async function place(host: FakeHostNet, network: 'auto' | 'bridge' | 'slirp') {
  const registry = Registry.open(join(dir, `agent-${n++}.db`), { create: true });
  try {
    const p = await placeVm(registry, PATHS, { bridge: BRIDGE, subnet: '10.99.0.0/24', host }, KEY, 'web-vm', spec(network));
    return { p, leases: registry.leases.forComponent(KEY).map((l) => `${l.kind}:${l.purpose}`).sort() };
  } finally {
    registry.close();
  }
}

describe('placeVm and the host network', () => {
  it('auto: the bridge when it exists with its rules and no other agent, with a leased address', async () => {
    const host = new FakeHostNet({ bridge: 'mcp-br0' });
    const { p, leases } = await place(host, 'auto');
    assert.deepEqual(p.net, { mode: 'bridge', bridge: 'mcp-br0', tap: p.net.mode === 'bridge' ? p.net.tap : '', ip: '10.99.0.2', prefix: 24, gateway: '10.99.0.1' });
    assert.deepEqual(leases, ['ip:bridge']);
  });

  it('auto: rules that went missing are loaded again before the VM goes on the bridge', async () => {
    const host = new FakeHostNet({ bridge: 'mcp-br0', rules: false });
    const { p } = await place(host, 'auto');
    assert.equal(p.net.mode, 'bridge');
    assert.ok(host.calls.includes('ensureRules mcp-br0'), host.calls.join('\n'));
    assert.equal(host.bridges.get('mcp-br0')?.rules, true);
  });

  it('auto: SLIRP, with a leased SSH port, when there is no bridge, its rules cannot be loaded, or another agent uses it', async () => {
    const noBridge = new FakeHostNet();
    const noRules = Object.assign(new FakeHostNet({ bridge: 'mcp-br0', rules: false }), { rulesFail: 'nft is not installed' });
    const shared = new FakeHostNet({ bridge: 'mcp-br0' });
    shared.taps.set('othertap', { bridge: 'mcp-br0', owner: 'agent-other:db-vm' });
    const unknown = Object.assign(new FakeHostNet({ bridge: 'mcp-br0' }), { ipUnknown: true });
    for (const host of [noBridge, noRules, shared, unknown]) {
      const { p, leases } = await place(host, 'auto');
      assert.equal(p.net.mode, 'slirp', host.calls.join('\n'));
      assert.deepEqual(leases, ['host_port:ssh']);
    }
  });

  it('bridge: an error naming the bridge and the rule when it cannot be had', async () => {
    const shared = new FakeHostNet({ bridge: 'mcp-br0' });
    shared.taps.set('othertap', { bridge: 'mcp-br0', owner: 'agent-other:db-vm' });
    await assert.rejects(place(new FakeHostNet(), 'bridge'), /network 'bridge': the bridge mcp-br0 does not exist \(agent net up creates it\)/);
    await assert.rejects(place(shared, 'bridge'), /network 'bridge': the bridge mcp-br0 carries VMs of another agent \(agent-other\)/);
    const noRules = Object.assign(new FakeHostNet({ bridge: 'mcp-br0', rules: false }), { rulesFail: 'nft is not installed' });
    await assert.rejects(place(noRules, 'bridge'), /the isolation rules of mcp-br0 are not in place and cannot be loaded: nft is not installed/);
  });

  it('slirp: the host is not asked about the bridge at all', async () => {
    const host = new FakeHostNet({ bridge: 'mcp-br0' });
    const { p } = await place(host, 'slirp');
    assert.equal(p.net.mode, 'slirp');
    assert.deepEqual(host.calls, []);
  });
});
