/**
 * The QEMU command line for one VM, pure. Everything the VM needs to outlive the agent is here:
 * -daemonize with a pidfile, a QMP socket and a serial log in the VM's state dir.
 */
import type { Accel } from './accel.js';

export interface VmBoot {
  /** Absolute path of the disk to attach (an overlay of the image), or undefined for kernel-only. */
  disk: string | undefined;
  diskFormat: 'qcow2' | 'raw';
  kernel: string | undefined;
  initrd: string | undefined;
  /** Full kernel command line, when booting a kernel. */
  append: string | undefined;
}

export type VmNetArgs =
  | { mode: 'slirp'; sshPort: number; forwards: Array<{ host: number; guest: number; protocol: 'tcp' | 'udp' }>; mac: string }
  | { mode: 'bridge'; tap: string; mac: string };

export interface VmLaunch {
  name: string;
  memoryMib: number;
  vcpus: number;
  accel: Accel;
  stateDir: string;
  boot: VmBoot;
  net: VmNetArgs;
  /** Extra SMBIOS OEM strings (type 11), e.g. `agent.ip=...` for disk-image guests. */
  oemStrings: string[];
}

export const stateFiles = (dir: string) => ({
  pidfile: `${dir}/qemu.pid`,
  qmp: `${dir}/qmp.sock`,
  console: `${dir}/console.log`,
  spec: `${dir}/spec.json`,
  overlay: `${dir}/disk.qcow2`,
  ready: `${dir}/ready`,
  /** Why QEMU ended, from its QMP SHUTDOWN event (see exit.ts); absent when nobody watched. */
  exit: `${dir}/exit.json`,
});

/** QEMU's -option key=value,... syntax: a comma in a value is written as two. */
const q = (s: string): string => s.replaceAll(',', ',,');

export function qemuArgs(v: VmLaunch): string[] {
  const f = stateFiles(v.stateDir);
  const args = [
    // guest= only: no process=, so the process keeps QEMU's own name and `pgrep qemu`,
    // `ps -C qemu-system-x86_64` find it; the workload name is in its argv (see state.ts).
    '-name', `guest=${q(v.name)}`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-m', `${v.memoryMib}M`,
    '-smp', String(v.vcpus),
  ];
  if (v.accel === 'kvm') {
    args.push('-accel', 'kvm', '-cpu', 'host');
  } else {
    // tb-size=32 saves ~35 MB RSS per guest at no boot cost; +rdrand spares dropbear ~1 s of
    // waiting for entropy on the first connection (HOST-FACTS).
    args.push('-accel', 'tcg,tb-size=32', '-cpu', 'qemu64,+rdrand');
  }
  args.push(
    '-serial', `file:${f.console}`,
    // -qmp takes key=value options, so a comma in the path is doubled; -serial file: and
    // -pidfile take the rest of the argument as the path and must not be.
    '-qmp', `unix:${q(f.qmp)},server=on,wait=off`,
    '-pidfile', f.pidfile,
    '-daemonize',
  );
  if (v.boot.kernel) {
    args.push('-kernel', v.boot.kernel);
    if (v.boot.initrd) args.push('-initrd', v.boot.initrd);
    if (v.boot.append) args.push('-append', v.boot.append);
  }
  if (v.boot.disk) args.push('-drive', `file=${q(v.boot.disk)},if=virtio,format=${v.boot.diskFormat}`);
  if (v.net.mode === 'slirp') {
    const fwd = [`hostfwd=tcp:127.0.0.1:${v.net.sshPort}-:22`, ...v.net.forwards.map((p) => `hostfwd=${p.protocol}:127.0.0.1:${p.host}-:${p.guest}`)];
    // restrict=on: the guest reaches no outside address; the host forwards still work.
    args.push('-netdev', `user,id=n0,restrict=on,${fwd.join(',')}`);
  } else {
    // The agent made the TAP (and deletes it): QEMU only opens it. No vhost (no /dev/vhost-net here).
    args.push('-netdev', `tap,id=n0,ifname=${v.net.tap},script=no,downscript=no`);
  }
  args.push('-device', `virtio-net-pci,netdev=n0,mac=${v.net.mac}`);
  for (const s of v.oemStrings) args.push('-smbios', `type=11,value=${q(s)}`);
  return args;
}
