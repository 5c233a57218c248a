/**
 * What a benchmark reads from /proc: QEMU processes by where their argv points, a fast watch for
 * a new process, and CPU ticks. Read-only, except killQemus, which signals only pids whose argv
 * still points into the caller's own dirs (a benchmark never ends a process that is not its own).
 */
import { readdirSync, readFileSync } from 'node:fs';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const pids = (): string[] => readdirSync('/proc').filter((p) => p.charCodeAt(0) >= 48 && p.charCodeAt(0) <= 57);

export function cmdline(pid: number | string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** QEMU processes whose command line contains one of `needles` (a dir, `guest=NAME\0`). */
export function qemuPidsWith(needles: string[]): number[] {
  const out: number[] = [];
  for (const p of pids()) {
    const argv = cmdline(p);
    if (argv?.startsWith('qemu-system') && needles.some((n) => argv.includes(n))) out.push(Number(p));
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Polls /proc every `everyMs` for a new QEMU process whose argv contains `needle`; only pids not
 * present when the watch began are read (one readdir per poll, so a 1 ms poll stays cheap).
 * Resolves with the pid and the time (epoch ms, from `clock`) it was first seen.
 */
export async function watchNewQemu(needle: string, clock: () => number, o: { everyMs: number; timeoutMs: number; known?: Set<string> }): Promise<{ pid: number; seenAt: number; polls: number }> {
  const known = o.known ?? new Set(pids());
  const deadline = clock() + o.timeoutMs;
  let polls = 0;
  for (;;) {
    polls++;
    for (const p of pids()) {
      if (known.has(p)) continue;
      const argv = cmdline(p);
      // A brand-new process may not have exec'd yet (its argv is still its parent's): look again next poll.
      if (argv === undefined || argv === '') continue;
      known.add(p);
      if (argv.startsWith('qemu-system') && argv.includes(needle)) return { pid: Number(p), seenAt: clock(), polls };
    }
    if (clock() > deadline) throw new Error(`no new QEMU with ${needle.replaceAll('\0', ' ')} in its argv within ${o.timeoutMs} ms`);
    await sleep(o.everyMs);
  }
}

/** A snapshot of the pids in /proc now (to start watchNewQemu from, before acting). */
export const pidSet = (): Set<string> => new Set(pids());

/** utime+stime of a process, and cutime+cstime (its waited-for children), in clock ticks. */
export function cpuTicks(pid: number): { self: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after ")": state(3) ... utime(14) stime(15) cutime(16) cstime(17); f[0] is field 3.
    return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

/** Processes whose environment has `KEY=VALUE` (the agent marks its helpers with MCP_AGENT_ID). */
export function pidsWithEnv(entry: string): number[] {
  const out: number[] = [];
  for (const p of pids()) {
    try {
      if (readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(entry)) out.push(Number(p));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** SIGTERM, then SIGKILL, each pid, only while its argv still points into one of `dirs`. */
export async function killQemus(list: number[], dirs: string[]): Promise<void> {
  const stillOurs = (pid: number): boolean => alive(pid) && dirs.some((d) => cmdline(pid)?.includes(d) ?? false);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const live = list.filter(stillOurs);
    if (live.length === 0) return;
    for (const pid of live) {
      try {
        process.kill(pid, signal);
      } catch {
        /* gone */
      }
    }
    const deadline = Date.now() + 5000;
    while (list.some(stillOurs) && Date.now() < deadline) await sleep(50);
  }
}
