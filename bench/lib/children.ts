/**
 * Child processes of a benchmark. Every one is tracked, so the benchmark can end what it started,
 * by pid, even when interrupted: a benchmark must never leave an agent, podman or QEMU behind,
 * and must never end a process that is not its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface Ran {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const live = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null && c.pid !== undefined;

export class ChildTracker {
  private readonly children = new Set<ChildProcess>();

  constructor(private readonly o: { cwd: string; env: NodeJS.ProcessEnv }) {}

  /** Runs a command to its end, timed; SIGTERM after `timeoutMs`. */
  run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Ran> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn(cmd, args, { cwd: this.o.cwd, env: this.o.env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.add(child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const timer = opts.timeoutMs
        ? setTimeout(() => {
            if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
          }, opts.timeoutMs)
        : undefined;
      child.on('error', (e) => {
        this.children.delete(child);
        if (timer) clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        const ms = performance.now() - t0;
        this.children.delete(child);
        if (timer) clearTimeout(timer);
        resolve({ ms, code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  }

  /** Like run, but a non-zero exit is an error carrying the output (stderr's tail). */
  async must(cmd: string, args: string[], timeoutMs: number): Promise<Ran> {
    const r = await this.run(cmd, args, { timeoutMs });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(-4000)}`);
    return r;
  }

  /** Tracks a process the benchmark spawned itself (a long-running agent), until it exits. */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** SIGTERM to every child still running, `graceMs` to exit, then SIGKILL. */
  async endAll(graceMs: number): Promise<void> {
    for (const c of this.children) {
      if (!live(c)) continue;
      try {
        process.kill(c.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    const deadline = Date.now() + graceMs;
    while ([...this.children].some(live) && Date.now() < deadline) await sleep(100);
    for (const c of this.children) {
      if (!live(c)) continue;
      try {
        process.kill(c.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/**
 * On SIGINT or SIGTERM: run the benchmark's cleanup once (a second signal only says to wait),
 * then exit 130. Registered before anything is started; `interrupted` tells long loops to stop.
 */
export function cleanUpOnSignals(log: (msg: string) => void, cleanup: () => Promise<unknown>): { readonly interrupted: boolean } {
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) {
        log(`${sig} again: cleanup is under way, please wait`);
        return;
      }
      interrupted = true;
      log(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  return {
    get interrupted() {
      return interrupted;
    },
  };
}
