/**
 * The QEMU process of a VM, from outside: waiting for it to be gone, killing it (its own pid
 * only: identity is checked before each signal, so a reused pid is never hit), and following its
 * serial console. Also the one abort rule of a boot: a start stops waiting when its signal fires.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { RuntimeError } from '../../errors.js';
import { livePid } from './state.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether the VM's QEMU is gone within `ms` (checked every 50 ms). */
export async function waitGone(dir: string, name: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (livePid(dir, name) === undefined) return true;
    await sleep(50);
  }
  return livePid(dir, name) === undefined;
}

/** SIGTERM, then SIGKILL, to the VM's own pid only (identity checked each time). */
export async function killVm(name: string, dir: string): Promise<void> {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pid = livePid(dir, name);
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitGone(dir, name, 3000)) return;
  }
  if (livePid(dir, name) !== undefined) throw new RuntimeError('qemu', 'kill', name, 'QEMU did not exit on SIGKILL');
}

/** Settles like `p`, or rejects with the signal's reason as soon as it aborts (`p` runs on). */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The console file's text; with follow, new output as it is written (a new launch truncates it), until the signal aborts. */
export async function* consoleText(file: string, opts: { follow: boolean; signal?: AbortSignal }): AsyncIterable<string> {
  let offset = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const size = existsSync(file) ? statSync(file).size : 0;
    if (size < offset) offset = 0; // a new launch truncated it
    while (offset < size) {
      const fd = openSync(file, 'r');
      try {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - offset), offset);
        offset += n;
        yield buf.subarray(0, n).toString('utf8').replaceAll('\r', '');
      } finally {
        closeSync(fd);
      }
    }
    if (!opts.follow || opts.signal?.aborted) return;
    await sleep(200);
  }
}
