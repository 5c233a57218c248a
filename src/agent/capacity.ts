/**
 * What this host holds, read from the kernel (the adapter under admission.ts, which decides
 * purely): MemTotal from /proc/meminfo, the online CPUs from /sys/devices/system/cpu/online. Read
 * on every plan (two small procfs reads, well under a millisecond), so a host whose memory or CPUs
 * change is seen at the next pass. On a host where MemTotal cannot be read there is nothing to
 * admit against: `hostAdmission` returns undefined, every start is admitted, and status shows no
 * capacity.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { AgentConfig } from '../config/config.js';
import type { AdmissionInput, HostCapacity } from './admission.js';

/** `MemTotal:       24684096 kB` → MiB (whole, rounded down). */
export function parseMemTotal(meminfo: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s+kB$/m.exec(meminfo);
  return m ? Math.floor(Number(m[1]) / 1024) : undefined;
}

/** `0-1,4,6-7` (the kernel's cpu list format) → 5. */
export function parseCpuList(list: string): number | undefined {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    n += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return n > 0 ? n : undefined;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** The host's memory and online CPUs; undefined when /proc/meminfo cannot be read or parsed. */
export function readHostCapacity(): HostCapacity | undefined {
  const memTotalMib = parseMemTotal(read('/proc/meminfo') ?? '');
  if (memTotalMib === undefined) return undefined;
  // Without sysfs (a container may hide it), the CPUs Node sees are the best guess.
  const online = parseCpuList(read('/sys/devices/system/cpu/online') ?? '') ?? Math.max(1, cpus().length);
  return { memTotalMib, onlineCpus: online };
}

/** What plan() admits against: the host now and the node's settings. */
export function hostAdmission(config: AgentConfig): AdmissionInput | undefined {
  return admissionInput(config, readHostCapacity());
}

/** The node's settings around what a host holds; undefined when the host could not be read. */
export function admissionInput(config: AgentConfig, host: HostCapacity | undefined): AdmissionInput | undefined {
  if (!host) return undefined;
  return {
    host,
    settings: {
      reservedMemoryMib: config.host.reserved_memory_mib,
      cpuOvercommit: config.host.cpu_overcommit,
      defaultContainerMemoryMib: config.host.default_container_memory_mib,
      qemuOverheadMib: config.qemu.overhead_mib,
    },
  };
}
