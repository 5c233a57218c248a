/**
 * A process named so that a reused pid cannot pass for it: the pid plus the kernel's start time
 * of that process (field 22 of /proc/PID/stat, in clock ticks since boot) and the boot id.
 */
import { readFileSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Clock ticks after boot at which the process started. */
  start: number;
  /** /proc/sys/kernel/random/boot_id: a pid from before a reboot is never alive. */
  boot: string;
}

/** Fields after the command name, which is in parentheses and may itself hold spaces or ')'. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

export function identityOf(pid: number): ProcessIdentity | undefined {
  const f = statFields(pid);
  // After ')': [0] state, ... [19] starttime (field 22 of the whole line).
  if (!f || f[0] === 'Z' || f[19] === undefined) return undefined;
  return { pid, start: Number(f[19]), boot: bootId() };
}

export function selfIdentity(): ProcessIdentity {
  const id = identityOf(process.pid);
  if (!id) throw new Error('cannot read /proc/self/stat');
  return id;
}

/** The process still runs and is the same one (not a pid reused since, not a zombie). */
export function identityLive(id: ProcessIdentity): boolean {
  const now = identityOf(id.pid);
  return now !== undefined && now.start === id.start && now.boot === id.boot;
}
