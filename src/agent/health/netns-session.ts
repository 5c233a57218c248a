/**
 * A shell kept in a container's network namespace for its tcp probes: `nsenter -t PID -n -- sh`
 * reading `PORT SECONDS` lines and answering `RC OUTPUT` of `nc -z -v` per line. One spawn per
 * container run instead of one per probe: a probe then costs the agent a pipe write and read,
 * and the node one fork of nc (bench/health.bench.ts). The shell holds the namespace open, so the
 * prober closes it when the run is forgotten; one that breaks or does not answer in time is
 * killed, and the next probe starts a new one.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { trackKill } from './spawn.js';

// set -f: nc names an unknown port `[tcp/*]`, which an unquoted $out would glob.
const SCRIPT = 'set -f; while read p w; do out=$(nc -z -v -w "$w" 127.0.0.1 "$p" 2>&1); rc=$?; echo $rc $out; done';

export class NetnsSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private buf = '';
  private waiting: ((line: string | undefined) => void) | undefined;
  private closed = false;
  private readonly untrack: () => void;

  constructor(pid: number, o: { nsenter?: string | undefined; nc?: string | undefined } = {}) {
    const script = o.nc ? SCRIPT.replace('nc -z', `${o.nc} -z`) : SCRIPT;
    this.child = spawn(o.nsenter ?? 'nsenter', ['-t', String(pid), '-n', '--', '/bin/sh', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.untrack = trackKill(() => this.close());
    this.child.stdout.on('data', (b: Buffer) => {
      this.buf += b.toString('utf8');
      const nl = this.buf.indexOf('\n');
      if (nl < 0) return;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.answer(line);
    });
    this.child.stderr.on('data', (b: Buffer) => void (this.lastError = b.toString('utf8').trim().slice(0, 500)));
    this.child.on('error', (e) => ((this.lastError = e.message), this.close()));
    this.child.on('close', () => this.close());
    this.child.stdin.on('error', () => this.close());
  }

  /** What the session said on stderr last (nsenter failing on a PID that is gone). */
  lastError = '';

  get alive(): boolean {
    return !this.closed;
  }

  /** `nc -z` of the port: its exit code and output; undefined when the session broke or did not answer in time (then it is closed). */
  async probe(port: number, timeoutMs: number): Promise<{ code: number; output: string } | undefined> {
    if (this.closed || this.waiting) return undefined;
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    let timer: NodeJS.Timeout | undefined;
    const line = await new Promise<string | undefined>((resolve) => {
      this.waiting = resolve;
      timer = setTimeout(() => this.close(), timeoutMs);
      this.child.stdin.write(`${port} ${secs}\n`);
    });
    clearTimeout(timer);
    if (line === undefined) return undefined;
    const m = /^(\d+) ?(.*)$/.exec(line);
    return m ? { code: Number(m[1]), output: m[2]! } : undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.untrack();
    this.child.kill('SIGKILL');
    this.answer(undefined);
  }

  private answer(line: string | undefined): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.(line);
  }
}
