/**
 * A VM's state directory (`<vm_dir>/<name>/`) and the process behind it. The directory is what
 * lets a VM outlive the agent: the spec it was started from, its pidfile, QMP socket and console
 * log. A pid alone proves nothing (pids are reused): a VM is alive only if /proc/PID/cmdline is
 * exactly one of ours (its -name and pidfile), and QEMU counts as gone only when all its threads
 * are (a zombie main thread while another thread still exits is not gone yet).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { z } from 'zod';
import { stateFiles } from './args.js';

export const VmRecordSchema = z.object({
  agentId: z.string(),
  name: z.string(),
  service: z.string(),
  component: z.string(),
  specHash: z.string(),
  sshHost: z.string(),
  sshPort: z.number().int(),
  netMode: z.enum(['slirp', 'bridge']),
  tap: z.string().optional(),
  /** The bridge its TAP was put on (absent in records written before it was kept). */
  bridge: z.string().optional(),
  hostKey: z.string(),
  sshUser: z.string(),
  address: z.string(),
  args: z.array(z.string()),
  launchedAt: z.string(),
  /** The systemd scope QEMU was started in (scope.ts), when it was: what a stop or removal ends. */
  scope: z.string().optional(),
});
export type VmRecord = z.infer<typeof VmRecordSchema>;

export function readRecord(dir: string): VmRecord | undefined {
  try {
    const parsed = VmRecordSchema.safeParse(JSON.parse(readFileSync(stateFiles(dir).spec, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function readPid(dir: string): number | undefined {
  try {
    const text = readFileSync(stateFiles(dir).pidfile, 'utf8').trim();
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** True while any thread of the process is not a zombie. */
export function processLive(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return tasks.some((t) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state !== 'Z' && state !== 'X';
    } catch {
      return false;
    }
  });
}

/** The pid runs QEMU for exactly this VM: its argv names it and its pidfile is in `dir`. */
export function isOurVm(pid: number, name: string, dir: string): boolean {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  const nameAt = argv.indexOf('-name');
  const pidAt = argv.indexOf('-pidfile');
  const guest = `guest=${name.replaceAll(',', ',,')}`;
  // `,process=` too: VMs started by agents that renamed QEMU's process are still adopted.
  const named = nameAt >= 0 && (argv[nameAt + 1] === guest || argv[nameAt + 1] === `${guest},process=${name.replaceAll(',', ',,')}`);
  return named && pidAt >= 0 && argv[pidAt + 1] === stateFiles(dir).pidfile;
}

/** The live pid of the VM in `dir`, or undefined when it is not running (or not ours). */
export function livePid(dir: string, name: string): number | undefined {
  const pid = readPid(dir);
  return pid !== undefined && isOurVm(pid, name, dir) && processLive(pid) ? pid : undefined;
}

export function isReady(dir: string): boolean {
  return existsSync(stateFiles(dir).ready);
}

/** The last `lines` lines of the serial console, CRs dropped (SeaBIOS boots log \r\n). */
export function consoleTail(dir: string, lines = 15): string {
  try {
    const text = readFileSync(stateFiles(dir).console, 'utf8').replaceAll('\r', '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console output)';
  }
}
