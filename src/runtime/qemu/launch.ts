/**
 * A VM's launch as data, pure: the spec, its placement (files, network, leases) and the chosen
 * accelerator in; the QEMU argument list and the VM record (what lets the VM be found again) out.
 * Nothing here touches the host, so a launch can be printed, diffed and tested before it runs.
 */
import { macFor } from '../../identity.js';
import type { WorkloadSpec } from '../types.js';
import type { Accel } from './accel.js';
import { qemuArgs } from './args.js';
import { scopeUnit, type ScopeLaunch } from './scope.js';
import type { VmRecord } from './state.js';

export interface LaunchInput {
  /** The workload, with its VM placement (`w.vm`). */
  w: Pick<WorkloadSpec, 'name' | 'key' | 'specHash' | 'spec'> & { vm: NonNullable<WorkloadSpec['vm']> };
  /** The VM's state dir. */
  dir: string;
  agentId: string;
  accel: Accel;
  /** The qcow2 overlay to boot, when the component boots a disk image. */
  disk: string | undefined;
  sshUser: string;
  /** Kernel command line every kernel boot gets before the component's own `cmdline`. */
  baseCmdline: string;
  /** The launch time recorded (the caller's clock). */
  now: Date;
  /** Set when the VM starts in its own systemd scope (scope.ts): QEMU's overhead, for MemoryMax. */
  scope?: { overheadMib: number } | undefined;
}

export interface LaunchDescription {
  /** QEMU's own arguments (also in the record: they identify the process, see state.ts). */
  args: string[];
  record: VmRecord;
  /** The scope to wrap the launch in (scope.ts scopeArgs), when scopes are on. */
  scope: ScopeLaunch | undefined;
}

export function describeLaunch(i: LaunchInput): LaunchDescription {
  const { w, dir } = i;
  const vm = w.vm;
  const s = w.spec;
  const net = vm.net;
  const mac = macFor(w.name);
  // The guest learns its static IP without DHCP: `ip=` on a kernel command line, the SMBIOS OEM
  // string `agent.ip=` for a disk image (the guest image's /init reads both; docs/guest-image.md).
  const ipArg = net.mode === 'bridge' ? `${net.ip}/${net.prefix}:${net.gateway}` : undefined;
  const append = vm.files.kernel ? [i.baseCmdline, ipArg ? `ip=${ipArg}` : '', s.cmdline ?? ''].filter(Boolean).join(' ') : undefined;
  const memoryMib = s.memory ?? 128;
  const vcpus = s.vcpus ?? 1;
  const args = qemuArgs({
    name: w.name,
    memoryMib,
    vcpus,
    accel: i.accel,
    stateDir: dir,
    boot: { disk: i.disk, diskFormat: 'qcow2', kernel: vm.files.kernel, initrd: vm.files.initrd, append },
    net: net.mode === 'slirp' ? { mode: 'slirp', sshPort: net.sshPort, forwards: net.forwards, mac } : { mode: 'bridge', tap: net.tap, mac },
    oemStrings: [`agent.name=${w.name}`, ...(ipArg ? [`agent.ip=${ipArg}`] : [])],
  });
  const sshHost = net.mode === 'bridge' ? net.ip : '127.0.0.1';
  const sshPort = net.mode === 'bridge' ? 22 : net.sshPort;
  const record: VmRecord = {
    agentId: i.agentId,
    name: w.name,
    service: w.key.service,
    component: w.key.component,
    specHash: w.specHash,
    sshHost,
    sshPort,
    hostKey: vm.hostKey,
    sshUser: i.sshUser,
    address: net.mode === 'bridge' ? net.ip : `127.0.0.1:${sshPort}`,
    netMode: net.mode,
    tap: net.mode === 'bridge' ? net.tap : undefined,
    bridge: net.mode === 'bridge' ? net.bridge : undefined,
    args,
    launchedAt: i.now.toISOString(),
    ...(i.scope ? { scope: scopeUnit(w.name) } : {}),
  };
  const scope = i.scope && { workload: w.name, service: w.key.service, component: w.key.component, memoryMib, vcpus, overheadMib: i.scope.overheadMib };
  return { args, record, scope };
}
