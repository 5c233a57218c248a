/**
 * The CLI's standard output, written without process.stdout where it can be: Node builds that
 * stream on first use (a net.Socket for a pipe, with the stream machinery it loads), ~5 ms of a
 * CLI call that prints one document. `print` writes the bytes to fd 1 itself; the streams are still
 * there for what streams (`logs -f`, `exec`, commander's help), and on Linux they write
 * synchronously to pipes, files and TTYs as `print` does, so the two never reorder.
 *
 * `agent status --json | head -1`: once the reader is gone our next write fails with EPIPE. git
 * and kubectl die of SIGPIPE there, which a shell reports as 141 (and `set -o pipefail` sees);
 * Node ignores SIGPIPE, so the CLI exits 141 itself, like git's own fallback, and says nothing:
 * the reader had what it wanted, and stderr may be the broken pipe too.
 */
import { writeSync } from 'node:fs';

const BROKEN_PIPE_EXIT = 141;

const brokenPipe = (err: NodeJS.ErrnoException): void => {
  if (err.code === 'EPIPE') process.exit(BROKEN_PIPE_EXIT);
  throw err;
};

/**
 * process.stdout and process.stderr get the EPIPE handler when they are first used, not before:
 * reading either getter builds the stream. Idempotent.
 */
let hooked = false;
export function quietOnBrokenPipe(): void {
  if (hooked) return;
  hooked = true;
  for (const name of ['stdout', 'stderr'] as const) {
    const d = Object.getOwnPropertyDescriptor(process, name);
    if (!d?.get || !d.configurable) {
      process[name].on('error', brokenPipe);
      continue;
    }
    const build = d.get;
    let stream: NodeJS.WriteStream | undefined;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: d.enumerable ?? true,
      get() {
        if (stream === undefined) {
          stream = build.call(process) as NodeJS.WriteStream;
          stream.on('error', brokenPipe);
        }
        return stream;
      },
    });
  }
}

/** Once the stream has taken over (see print), it writes everything after: nothing overtakes what it holds. */
let throughStream = false;

/** `s` and a newline (unless it ends with one) on standard output. */
export function print(s: string): void {
  const text = s.endsWith('\n') ? s : `${s}\n`;
  if (throughStream) return void process.stdout.write(text);
  const bytes = Buffer.from(text, 'utf8');
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // A non-blocking fd 1 (set so by whoever gave it to us): the stream knows how to wait.
      if (e.code === 'EAGAIN') {
        throughStream = true;
        process.stdout.write(bytes.subarray(written));
        return;
      }
      brokenPipe(e);
    }
  }
}
