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

/**
 * Where the last `lines` lines of the file begin (like `tail -n`: a last line without its newline
 * counts), read backwards in blocks so a long console costs what is printed, not its size.
 */
export function lastLinesOffset(file: string, lines: number): number {
  const size = existsSync(file) ? statSync(file).size : 0;
  if (lines <= 0 || size === 0) return size;
  const fd = openSync(file, 'r');
  try {
    const block = Buffer.alloc(64 * 1024);
    let end = size;
    let found = 0;
    while (end > 0) {
      const start = Math.max(0, end - block.length);
      const n = readSync(fd, block, 0, end - start, start);
      for (let i = n - 1; i >= 0; i--) {
        // The file's own final newline ends the last line; it does not begin another.
        if (block[i] !== 0x0a || start + i === size - 1) continue;
        if (++found === lines) return start + i + 1;
      }
      end = start;
    }
    return 0;
  } finally {
    closeSync(fd);
  }
}

/**
 * The console file's text; with follow, new output as it is written (a new launch truncates it),
 * until the signal aborts. With `tail`, only its last `tail` lines to begin with.
 */
export async function* consoleText(file: string, opts: { follow: boolean; signal?: AbortSignal; tail?: number }): AsyncIterable<string> {
  let offset = opts.tail === undefined ? 0 : lastLinesOffset(file, opts.tail);
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
