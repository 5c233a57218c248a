// The QEMU command line (pure), the accelerator choice, and VM MAC addresses.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { macFor } from '../../src/identity.js';
import { chooseAccel, type AccelMode } from '../../src/runtime/qemu/accel.js';
import { qemuArgs, stateFiles, type VmLaunch } from '../../src/runtime/qemu/args.js';

const DIR = '/var/lib/agent/vm/web-vm';

function launch(over: Partial<VmLaunch> = {}): VmLaunch {
  return {
    name: 'web-vm',
    memoryMib: 128,
    vcpus: 2,
    accel: 'tcg',
    stateDir: DIR,
    boot: { disk: undefined, diskFormat: 'qcow2', kernel: '/srv/images/vmlinux', initrd: '/srv/images/initrd.cpio', append: 'console=ttyS0 quiet' },
    net: { mode: 'slirp', sshPort: 10042, forwards: [], mac: '52:54:00:ab:cd:ef' },
    oemStrings: [],
    ...over,
  };
}

const diskBoot = (over: Partial<VmLaunch> = {}): VmLaunch =>
  launch({ boot: { disk: `${DIR}/disk.qcow2`, diskFormat: 'qcow2', kernel: undefined, initrd: undefined, append: undefined }, ...over });

/** The value after the only occurrence of `flag`. */
function value(args: string[], flag: string): string {
  const at = args.indexOf(flag);
  assert.ok(at >= 0, `${flag} missing from ${JSON.stringify(args)}`);
  assert.equal(args.indexOf(flag, at + 1), -1, `${flag} appears twice`);
  const v = args[at + 1];
  assert.ok(v !== undefined, `${flag} has no value`);
  return v;
}

/** Every value given after `flag`. */
const values = (args: string[], flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

/** `seq` occurs as consecutive arguments. */
function hasSeq(args: string[], ...seq: string[]): boolean {
  return args.some((_, i) => seq.every((s, j) => args[i + j] === s));
}

/** The hostfwd=... entries of the -netdev user,... option. */
const hostfwds = (args: string[]): string[] => value(args, '-netdev').split(',').filter((p) => p.startsWith('hostfwd='));

describe('qemuArgs: accelerator', () => {
  for (const boot of ['kernel', 'disk'] as const) {
    const make = boot === 'kernel' ? launch : diskBoot;
    it(`tcg (${boot} boot): -accel tcg,tb-size=32 -cpu qemu64,+rdrand`, () => {
      const a = qemuArgs(make({ accel: 'tcg' }));
      assert.equal(value(a, '-accel'), 'tcg,tb-size=32');
      assert.equal(value(a, '-cpu'), 'qemu64,+rdrand');
      assert.ok(!a.some((x) => /kvm/.test(x)), 'nothing mentions kvm');
    });
    it(`kvm (${boot} boot): -accel kvm -cpu host`, () => {
      const a = qemuArgs(make({ accel: 'kvm' }));
      assert.ok(hasSeq(a, '-accel', 'kvm'));
      assert.ok(hasSeq(a, '-cpu', 'host'));
      assert.equal(value(a, '-accel'), 'kvm');
      assert.ok(!a.some((x) => /tcg|tb-size|rdrand/.test(x)), 'no tcg options under kvm');
    });
  }
});

describe('qemuArgs: process, state files, devices', () => {
  it('daemonizes with pidfile, QMP socket and serial log inside the state dir', () => {
    for (const v of [launch(), diskBoot()]) {
      const a = qemuArgs(v);
      assert.ok(a.includes('-daemonize'));
      const f = stateFiles(DIR);
      assert.equal(value(a, '-pidfile'), f.pidfile);
      assert.equal(value(a, '-pidfile'), `${DIR}/qemu.pid`);
      assert.equal(value(a, '-qmp'), `unix:${DIR}/qmp.sock,server=on,wait=off`);
      assert.equal(value(a, '-serial'), `file:${DIR}/console.log`);
      for (const p of [f.pidfile, f.qmp, f.console]) assert.ok(p.startsWith(`${DIR}/`), `${p} inside the state dir`);
    }
  });

  it('has no default devices, no reboot, no display, the name, memory and vcpus', () => {
    const a = qemuArgs(launch({ memoryMib: 256, vcpus: 3 }));
    assert.ok(a.includes('-nodefaults'));
    assert.ok(a.includes('-no-user-config'));
    assert.ok(a.includes('-no-reboot'));
    assert.equal(value(a, '-display'), 'none');
    // no process=: QEMU keeps its own process name, so `pgrep qemu` and `ps -C` find it
    assert.equal(value(a, '-name'), 'guest=web-vm');
    assert.equal(value(a, '-m'), '256M');
    assert.equal(value(a, '-smp'), '3');
  });

  it('kernel boot: -kernel, -initrd, -append and no -drive', () => {
    const a = qemuArgs(launch());
    assert.equal(value(a, '-kernel'), '/srv/images/vmlinux');
    assert.equal(value(a, '-initrd'), '/srv/images/initrd.cpio');
    assert.equal(value(a, '-append'), 'console=ttyS0 quiet', 'the command line is one argument');
    assert.ok(!a.includes('-drive'));
  });

  it('kernel boot without initrd/append leaves those flags out', () => {
    const a = qemuArgs(launch({ boot: { disk: undefined, diskFormat: 'raw', kernel: '/k', initrd: undefined, append: undefined } }));
    assert.equal(value(a, '-kernel'), '/k');
    assert.ok(!a.includes('-initrd'));
    assert.ok(!a.includes('-append'));
  });

  it('disk boot: a virtio -drive with the format, and no -kernel/-initrd/-append', () => {
    const a = qemuArgs(diskBoot());
    assert.equal(value(a, '-drive'), `file=${DIR}/disk.qcow2,if=virtio,format=qcow2`);
    assert.ok(!a.includes('-kernel'));
    assert.ok(!a.includes('-initrd'));
    assert.ok(!a.includes('-append'));
    const raw = qemuArgs(diskBoot({ boot: { disk: '/srv/images/g.img', diskFormat: 'raw', kernel: undefined, initrd: undefined, append: undefined } }));
    assert.equal(value(raw, '-drive'), 'file=/srv/images/g.img,if=virtio,format=raw');
  });

  it('every flag has a non-empty value where one is expected (no undefined leaked in)', () => {
    for (const v of [launch(), diskBoot({ accel: 'kvm', oemStrings: ['a=b'] })]) {
      for (const x of qemuArgs(v)) {
        assert.equal(typeof x, 'string');
        assert.ok(!x.includes('undefined'), `argument ${x}`);
      }
    }
  });
});

describe('qemuArgs: SLIRP network', () => {
  it('forwards SSH to guest port 22 on 127.0.0.1 only, restrict=on', () => {
    const a = qemuArgs(launch());
    const netdev = value(a, '-netdev');
    assert.ok(netdev.startsWith('user,id=n0,'), netdev);
    assert.ok(netdev.split(',').includes('restrict=on'), netdev);
    assert.deepEqual(hostfwds(a), ['hostfwd=tcp:127.0.0.1:10042-:22']);
  });

  it('each forward (tcp and udp) is bound to 127.0.0.1', () => {
    const a = qemuArgs(
      launch({
        net: {
          mode: 'slirp',
          sshPort: 10050,
          forwards: [
            { host: 20000, guest: 80, protocol: 'tcp' },
            { host: 20001, guest: 53, protocol: 'udp' },
          ],
          mac: '52:54:00:00:00:01',
        },
      }),
    );
    const fw = hostfwds(a);
    assert.deepEqual(fw, ['hostfwd=tcp:127.0.0.1:10050-:22', 'hostfwd=tcp:127.0.0.1:20000-:80', 'hostfwd=udp:127.0.0.1:20001-:53']);
    for (const f of fw) assert.match(f, /^hostfwd=(tcp|udp):127\.0\.0\.1:\d+-:\d+$/);
  });

  it('the NIC is virtio on that netdev with the given MAC', () => {
    const a = qemuArgs(launch());
    assert.equal(value(a, '-device'), 'virtio-net-pci,netdev=n0,mac=52:54:00:ab:cd:ef');
  });
});

describe('qemuArgs: SMBIOS OEM strings and comma quoting', () => {
  it('each OEM string is a -smbios type=11 value', () => {
    const a = qemuArgs(diskBoot({ oemStrings: ['agent.ip=10.0.2.2', 'agent.port=8443'] }));
    assert.deepEqual(values(a, '-smbios'), ['type=11,value=agent.ip=10.0.2.2', 'type=11,value=agent.port=8443']);
    assert.ok(!qemuArgs(diskBoot()).includes('-smbios'), 'no -smbios without OEM strings');
  });

  it('commas in option values are doubled: OEM strings, the VM name, the disk path', () => {
    const a = qemuArgs(diskBoot({ name: 'a,b', oemStrings: ['k=v1,v2'] }));
    assert.deepEqual(values(a, '-smbios'), ['type=11,value=k=v1,,v2']);
    assert.equal(value(a, '-name'), 'guest=a,,b');
  });

  const commaDir = '/var/lib/agent,x/vm/web-vm';
  it('a state dir containing a comma: the overlay drive is quoted, plain-path flags are not', () => {
    const a = qemuArgs(diskBoot({ stateDir: commaDir, boot: { disk: `${commaDir}/disk.qcow2`, diskFormat: 'qcow2', kernel: undefined, initrd: undefined, append: undefined } }));
    assert.equal(value(a, '-drive'), 'file=/var/lib/agent,,x/vm/web-vm/disk.qcow2,if=virtio,format=qcow2');
    // -pidfile takes a plain path (no option syntax): it must be the literal path.
    assert.equal(value(a, '-pidfile'), `${commaDir}/qemu.pid`);
    // `-serial file:PATH` takes the rest literally in QEMU (qemu_chr_parse_compat): no doubling.
    assert.equal(value(a, '-serial'), `file:${commaDir}/console.log`);
  });

  it(
    'a state dir containing a comma: the QMP socket path is quoted (unix:PATH,server=on is option syntax)',
    () => {
      const a = qemuArgs(launch({ stateDir: commaDir }));
      assert.equal(value(a, '-qmp'), 'unix:/var/lib/agent,,x/vm/web-vm/qmp.sock,server=on,wait=off');
    },
  );
});

describe('chooseAccel', () => {
  it('auto picks kvm only when /dev/kvm opens AND the CPU has vmx/svm', () => {
    assert.equal(chooseAccel('auto', { kvmOpens: true, cpuHasVirt: true }), 'kvm');
    assert.equal(chooseAccel('auto', { kvmOpens: true, cpuHasVirt: false }), 'tcg');
    assert.equal(chooseAccel('auto', { kvmOpens: false, cpuHasVirt: true }), 'tcg');
    assert.equal(chooseAccel('auto', { kvmOpens: false, cpuHasVirt: false }), 'tcg');
  });

  it('an explicit mode wins over what the host offers', () => {
    for (const kvmOpens of [true, false]) {
      for (const cpuHasVirt of [true, false]) {
        for (const mode of ['kvm', 'tcg'] as AccelMode[]) assert.equal(chooseAccel(mode, { kvmOpens, cpuHasVirt }), mode);
      }
    }
  });
});

describe('macFor', () => {
  it('is a locally administered 52:54:00:xx:xx:xx address', () => {
    for (const n of ['web-vm', 'a', 'db-primary']) assert.match(macFor(n), /^52:54:00(:[0-9a-f]{2}){3}$/);
  });

  it('is deterministic and differs between names', () => {
    assert.equal(macFor('web-vm'), macFor('web-vm'));
    assert.notEqual(macFor('web-vm'), macFor('web-vm2'));
    const macs = new Set(Array.from({ length: 50 }, (_, i) => macFor(`svc-vm${i}`)));
    assert.equal(macs.size, 50);
  });

  it('takes the first three bytes of sha256(name)', () => {
    for (const n of ['web-vm', 'x', 'svc-vm7']) {
      const h = createHash('sha256').update(n).digest('hex');
      assert.equal(macFor(n), `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`);
    }
  });
});
