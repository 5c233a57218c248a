/**
 * Choosing QEMU's accelerator. On these machines /dev/kvm exists but is a nested software
 * virtualiser on which normal guests do not boot (HOST-FACTS), and QEMU still reports KVM as
 * enabled: "the device exists" is not "KVM works". `auto` picks KVM only when /dev/kvm opens
 * read-write AND the CPU advertises vmx or svm.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';

export type AccelMode = 'auto' | 'kvm' | 'tcg';
export type Accel = 'kvm' | 'tcg';

export interface HostVirt {
  kvmOpens: boolean;
  cpuHasVirt: boolean;
}

export function chooseAccel(mode: AccelMode, host: HostVirt): Accel {
  if (mode !== 'auto') return mode;
  return host.kvmOpens && host.cpuHasVirt ? 'kvm' : 'tcg';
}

export function probeHostVirt(): HostVirt {
  let kvmOpens = false;
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    kvmOpens = true;
  } catch {
    kvmOpens = false;
  }
  let cpuHasVirt = false;
  try {
    cpuHasVirt = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    cpuHasVirt = false;
  }
  return { kvmOpens, cpuHasVirt };
}
