// Placement takes the leases of the network the planner chose (network-drift.ts vmNetwork), on a
// real registry file: an IP on the bridge (its SLIRP ports given back), host ports on SLIRP (its
// IP given back), and a clear error, with nothing leased, when the network was refused. It never
// asks the host which network to use: that decision is the planner's, from the pass's bridge fact.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { placeVm } from '../../src/agent/placement.js';
import type { VmNetwork } from '../../src/agent/network-drift.js';
import { manifestSchemas } from '../../src/manifest/schema.js';
import { Registry } from '../../src/registry/index.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-placement-net-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'id_ed25519'), 'not a real key: placement only checks it can be read\n');
const PATHS = { home: dir, vmDir: join(dir, 'vm'), imagesDirs: [join(dir, 'images')], sshKey: join(dir, 'id_ed25519') };
const NET = { bridge: { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' }, subnet: '10.99.0.0/24' };
const KEY = { service: 'web', component: 'vm' };
const spec = (network: 'auto' | 'bridge' | 'slirp') =>
  manifestSchemas().ComponentSpecSchema.parse({ service: 'web', name: 'vm', runtime: 'unikernel', network, memory: 128, kernel: 'vmlinux', initrd: 'initrd.cpio', ssh_host_key: 'ssh-ed25519 AAAAC3Nza' });

let n = 0;
const leasesOf = (registry: Registry) => registry.leases.forComponent(KEY).map((l) => `${l.kind}:${l.purpose}`).sort();

/** A fresh registry, placed once per network in turn (the same component moving between networks). */
async function placeAll(mode: 'auto' | 'bridge' | 'slirp', networks: VmNetwork[]) {
  const registry = Registry.open(join(dir, `agent-${n++}.db`), { create: true });
  try {
    const out = [];
    for (const net of networks) {
      const p = await placeVm(registry, PATHS, NET, KEY, 'web-vm', spec(mode), net);
      out.push({ p, leases: leasesOf(registry) });
    }
    return out;
  } finally {
    registry.close();
  }
}

describe('placeVm takes the leases of the network it is given', () => {
  it('bridge: an address in the subnet, the lowest free one, leased to the component', async () => {
    const { p, leases } = (await placeAll('auto', [{ mode: 'bridge' }]))[0]!;
    assert.deepEqual(p.net, { mode: 'bridge', bridge: 'mcp-br0', tap: p.net.mode === 'bridge' ? p.net.tap : '', ip: '10.99.0.2', prefix: 24, gateway: '10.99.0.1' });
    assert.deepEqual(leases, ['ip:bridge']);
  });

  it('moving between networks gives back the leases of the other one, and keeps the address across a return', async () => {
    const steps = await placeAll('auto', [{ mode: 'bridge' }, { mode: 'slirp' }, { mode: 'bridge' }]);
    assert.deepEqual(steps.map((s) => s.leases), [['ip:bridge'], ['host_port:ssh'], ['ip:bridge']]);
    assert.deepEqual(steps.map((s) => s.p.net.mode), ['bridge', 'slirp', 'bridge']);
    const third = steps[2]!.p.net;
    assert.equal(third.mode === 'bridge' && third.ip, '10.99.0.2');
  });

  it('slirp: an SSH port leased, no address', async () => {
    const { p, leases } = (await placeAll('slirp', [{ mode: 'slirp' }]))[0]!;
    assert.equal(p.net.mode, 'slirp');
    assert.deepEqual(leases, ['host_port:ssh']);
  });

  it('refused: an error naming the network and the rule, and nothing leased', async () => {
    const registry = Registry.open(join(dir, `agent-${n++}.db`), { create: true });
    try {
      const why = 'the bridge mcp-br0 carries VMs of another agent (agent-other): two registries on one bridge would lease the same addresses';
      await assert.rejects(placeVm(registry, PATHS, NET, KEY, 'web-vm', spec('bridge'), { mode: 'refused', why }), /network 'bridge': the bridge mcp-br0 carries VMs of another agent \(agent-other\)/);
      assert.deepEqual(leasesOf(registry), []);
    } finally {
      registry.close();
    }
  });

  it('bridge with every address leased: an error for this component', async () => {
    const registry = Registry.open(join(dir, `agent-${n++}.db`), { create: true });
    try {
      const small = { ...NET, subnet: '10.99.0.0/30' };
      registry.leases.take('ip', '10.99.0.2', { service: 'web', component: 'other' }, 'bridge');
      await assert.rejects(placeVm(registry, PATHS, small, KEY, 'web-vm', spec('bridge'), { mode: 'bridge' }), /no free address left in 10\.99\.0\.0\/30 for this component/);
    } finally {
      registry.close();
    }
  });
});
