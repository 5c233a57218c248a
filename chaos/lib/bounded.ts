/**
 * A CLI call with a deadline: the chaos suite must never hang on the agent it is breaking. On the
 * deadline the call is killed (SIGKILL, by pid) and reported as timed out.
 */
import type { TestNode } from '../../test/helpers/agent.js';
import { sleep } from './config.js';

export interface BoundedResult {
  timedOut: boolean;
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

export async function bounded(node: TestNode, args: string[], deadlineMs: number, env: Record<string, string> = {}): Promise<BoundedResult> {
  const t0 = Date.now();
  const p = node.spawnCli(args, env);
  const done = await Promise.race([p.then(() => true), sleep(deadlineMs).then(() => false)]);
  if (!done && p.pid) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* it ended just now */
    }
  }
  const r = await p;
  return { timedOut: !done, exitCode: r.exitCode, signal: r.signal, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), ms: Date.now() - t0 };
}

/** Waits for a process to end, up to a deadline; true when it ended. */
export async function endsWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

export const STACK_TRACE = /unexpected error|^\s+at .+:\d+:\d+\)?$/m;

export function describeRun(args: string[], r: BoundedResult): string {
  if (r.timedOut) return `agent ${args.join(' ')} did not return within ${r.ms} ms`;
  const err = r.stderr.length > 500 ? `${r.stderr.slice(0, 500)}…` : r.stderr;
  return `agent ${args.join(' ')} → exit ${r.exitCode ?? r.signal}: ${JSON.stringify(err)}`;
}
