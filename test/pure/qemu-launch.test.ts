// A VM's launch as data (src/runtime/qemu/launch.ts) and what its observation makes of the host's
// TAPs (tapProblem): pure, no QEMU, no host.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { macFor } from '../../src/identity.js';
import { manifestSchemas } from '../../src/manifest/schema.js';
import { describeLaunch, type LaunchInput } from '../../src/runtime/qemu/launch.js';
import { tapProblem } from '../../src/runtime/qemu/observe.js';
import { VmRecordSchema } from '../../src/runtime/qemu/state.js';
import type { VmNet } from '../../src/runtime/types.js';

const DIR = '/var/lib/agent/vm/web-vm';
const NOW = new Date('2026-01-02T03:04:05.000Z');
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyDummyDummyDummyDummyDummyDummyDummyDu';
const BRIDGE: VmNet = { mode: 'bridge', bridge: 'mcp-br0', tap: 'mcptap0', ip: '10.99.0.7', prefix: 24, gateway: '10.99.0.1' };
const SLIRP: VmNet = { mode: 'slirp', sshPort: 10042, forwards: [{ host: 18080, guest: 80, protocol: 'tcp' }] };

function input(o: { spec?: Record<string, unknown>; files?: LaunchInput['w']['vm']['files']; net?: VmNet; disk?: string } = {}): LaunchInput {
  const spec = manifestSchemas().ComponentSpecSchema.parse({ service: 'web', name: 'vm', runtime: 'unikernel', network: 'auto', memory: 256, vcpus: 2, kernel: 'vmlinux', initrd: 'initrd.cpio', cmdline: 'quiet', ...o.spec });
  return {
    w: { name: 'web-vm', key: { service: 'web', component: 'vm' }, specHash: 'h1', spec, vm: { files: o.files ?? { kernel: '/srv/images/vmlinux', initrd: '/srv/images/initrd.cpio' }, hostKey: HOST_KEY, net: o.net ?? SLIRP } },
    dir: DIR,
    agentId: 'agent-1',
    accel: 'tcg',
    disk: o.disk,
    sshUser: 'root',
    baseCmdline: 'console=ttyS0',
    now: NOW,
  };
}

const after = (args: string[], flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

describe('describeLaunch', () => {
  it('a kernel boot on SLIRP: the base command line first, the SSH port forwarded, no IP', () => {
    const { args, record } = describeLaunch(input());
    assert.deepEqual(after(args, '-append'), ['console=ttyS0 quiet']);
    assert.deepEqual(after(args, '-kernel'), ['/srv/images/vmlinux']);
    assert.deepEqual(after(args, '-m'), ['256M']);
    assert.deepEqual(after(args, '-smp'), ['2']);
    assert.match(after(args, '-netdev')[0]!, /hostfwd=tcp:127\.0\.0\.1:10042-:22,hostfwd=tcp:127\.0\.0\.1:18080-:80/);
    assert.deepEqual(after(args, '-smbios'), ['type=11,value=agent.name=web-vm']);
    assert.deepEqual(after(args, '-device'), [`virtio-net-pci,netdev=n0,mac=${macFor('web-vm')}`]);
    assert.deepEqual(record, {
      agentId: 'agent-1',
      name: 'web-vm',
      service: 'web',
      component: 'vm',
      specHash: 'h1',
      sshHost: '127.0.0.1',
      sshPort: 10042,
      hostKey: HOST_KEY,
      sshUser: 'root',
      address: '127.0.0.1:10042',
      netMode: 'slirp',
      tap: undefined,
      bridge: undefined,
      args,
      launchedAt: '2026-01-02T03:04:05.000Z',
    });
  });

  it('a kernel boot on the bridge: its static IP on the command line and in an OEM string, SSH on port 22 of that IP', () => {
    const { args, record } = describeLaunch(input({ net: BRIDGE }));
    assert.deepEqual(after(args, '-append'), ['console=ttyS0 ip=10.99.0.7/24:10.99.0.1 quiet']);
    assert.deepEqual(after(args, '-netdev'), ['tap,id=n0,ifname=mcptap0,script=no,downscript=no']);
    assert.deepEqual(after(args, '-smbios'), ['type=11,value=agent.name=web-vm', 'type=11,value=agent.ip=10.99.0.7/24:10.99.0.1']);
    assert.equal(record.sshHost, '10.99.0.7');
    assert.equal(record.sshPort, 22);
    assert.equal(record.address, '10.99.0.7');
    assert.equal(record.tap, 'mcptap0');
    assert.equal(record.bridge, 'mcp-br0');
  });

  it('a disk image boots its overlay, with no kernel command line; memory and vcpus default to 128 MiB and 1', () => {
    const i = input({ spec: { kernel: undefined, initrd: undefined, cmdline: undefined, image: 'guest.qcow2', vcpus: undefined }, files: { image: '/srv/images/guest.qcow2' }, disk: `${DIR}/disk.qcow2` });
    const { args } = describeLaunch({ ...i, w: { ...i.w, spec: { ...i.w.spec, memory: undefined } } });
    assert.deepEqual(after(args, '-append'), []);
    assert.deepEqual(after(args, '-kernel'), []);
    assert.deepEqual(after(args, '-drive'), [`file=${DIR}/disk.qcow2,if=virtio,format=qcow2`]);
    assert.deepEqual(after(args, '-m'), ['128M']);
    assert.deepEqual(after(args, '-smp'), ['1']);
  });

  it('the record it writes is one the state dir reads back', () => {
    for (const net of [SLIRP, BRIDGE]) assert.ok(VmRecordSchema.safeParse(JSON.parse(JSON.stringify(describeLaunch(input({ net })).record))).success);
  });

  it('is a function of its input: the same input, the same launch', () => {
    assert.deepEqual(describeLaunch(input({ net: BRIDGE })), describeLaunch(input({ net: BRIDGE })));
  });
});

describe('tapProblem', () => {
  const rec = { netMode: 'bridge' as const, tap: 'mcptap0', bridge: 'mcp-br0' };
  it('none for a SLIRP VM, or a TAP on its bridge', () => {
    assert.equal(tapProblem({ netMode: 'slirp', tap: undefined, bridge: undefined }, new Map()), undefined);
    assert.equal(tapProblem(rec, new Map([['mcptap0', 'mcp-br0']])), undefined);
  });
  it('names a TAP gone, on no bridge, or on another bridge', () => {
    assert.equal(tapProblem(rec, new Map()), 'its TAP mcptap0 is gone');
    assert.equal(tapProblem(rec, new Map([['mcptap0', undefined]])), 'its TAP mcptap0 is on no bridge (was mcp-br0)');
    assert.equal(tapProblem(rec, new Map([['mcptap0', 'other-br']])), 'its TAP mcptap0 is on other-br, not mcp-br0');
  });
});
