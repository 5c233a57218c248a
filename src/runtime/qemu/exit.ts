/**
 * Why a VM ended. QEMU's exit status cannot tell: with -no-reboot a guest poweroff, a guest
 * reboot and a kernel panic (panic=-1 reboots) all end QEMU with status 0. Its QMP SHUTDOWN event
 * can: `reason` is guest-shutdown for a clean poweroff, guest-reset for a reboot or panic,
 * host-signal / host-qmp-quit when the host ended it. The watcher records that event in the VM's
 * state dir, so whoever observes the VM later (another pass, a restarted agent) still knows.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import type { QmpEvent } from '../qmp/wire.js';
import { stateFiles } from './args.js';

const ExitRecordSchema = z.object({ reason: z.string(), guest: z.boolean(), at: z.string() });
export type ExitRecord = z.infer<typeof ExitRecordSchema>;

/** What each SHUTDOWN reason means to an operator, and the exit code a restart policy sees. */
export function describeShutdown(r: Pick<ExitRecord, 'reason'>): { exitCode: number | undefined; why: string } {
  switch (r.reason) {
    case 'guest-shutdown':
      return { exitCode: 0, why: 'the guest powered itself off' };
    case 'guest-reset':
      return { exitCode: 1, why: 'the guest rebooted or panicked (QEMU runs with -no-reboot)' };
    case 'guest-panic':
      return { exitCode: 1, why: 'the guest panicked' };
    case 'host-signal':
      return { exitCode: 1, why: 'QEMU was ended by a signal on the host' };
    case 'host-qmp-quit':
      return { exitCode: 1, why: 'QEMU was told to quit through QMP' };
    default:
      return { exitCode: 1, why: `QEMU shut down (reason ${r.reason})` };
  }
}

export function recordExit(dir: string, e: QmpEvent): void {
  const reason = typeof e.data.reason === 'string' ? e.data.reason : 'unknown';
  const rec: ExitRecord = { reason, guest: e.data.guest === true, at: new Date(e.timestamp.seconds * 1000).toISOString() };
  try {
    writeFileSync(stateFiles(dir).exit, `${JSON.stringify(rec)}\n`);
  } catch {
    // the state dir is being removed (the agent stops and removes this VM): nothing to record
  }
}

/** The recorded end of the VM, described; undefined when no SHUTDOWN event was seen. */
export function readExit(dir: string): { exitCode: number | undefined; why: string } | undefined {
  try {
    const parsed = ExitRecordSchema.safeParse(JSON.parse(readFileSync(stateFiles(dir).exit, 'utf8')));
    return parsed.success ? describeShutdown(parsed.data) : undefined;
  } catch {
    return undefined;
  }
}
