/**
 * Every external command the agent runs (podman, qemu-system, qemu-img, ip, nft) goes through
 * `runBounded`: it has a bound, and when the bound passes (or the agent stops) the command is
 * killed with everything it started. Each command runs in its own process group, so a wrapper
 * script's children (a `sleep` holding the output pipe) die with it; otherwise execa would wait
 * for that pipe to close forever. The invariant: no command of the agent outlives its bound, and
 * none outlives the agent's stop.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa, type Options, type Result } from 'execa';
import { RuntimeError } from '../errors.js';

/** What a command concerns, for its error, and how long it may take. */
export interface CommandBound {
  /** 'podman', 'qemu', 'net'. */
  runtime: string;
  /** 'list', 'run', 'stop', 'launch', ... */
  operation: string;
  workload?: string | undefined;
  timeoutMs: number;
  /** Only reads state (a listing, a probe): a stopping agent cuts it short at once. */
  read?: boolean;
}

/** A command that did not answer within its bound, or was cut short: it has been killed. */
export class CommandTimeoutError extends RuntimeError {
  constructor(
    bound: CommandBound,
    readonly command: string,
    readonly why: 'timeout' | 'aborted',
    abortReason?: string,
  ) {
    const seconds = Math.round(bound.timeoutMs / 100) / 10;
    const message = why === 'timeout' ? `${command} did not answer within ${seconds} s (killed)` : `${command} was cut short: ${abortReason ?? 'aborted'} (killed)`;
    super(bound.runtime, bound.operation, bound.workload, message);
  }
}

interface Running {
  pid: number;
  bound: CommandBound;
  kill: (why: 'timeout' | 'aborted', reason?: string) => void;
}

/** Commands under way, by pid: what a stopping agent kills. */
const running = new Map<number, Running>();

/** SIGKILL to the command's process group (itself and whatever it started that stayed in it). */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/**
 * A command runs in its own process group, so a signal to the agent's group (Ctrl-C on `agent
 * status`) does not reach it, and execa's own cleanup skips such children: the agent kills them
 * when it exits, and on a signal nobody else handles (then the signal is raised again, as if
 * unhandled). A process that handles its signals (`agent run`) stops its commands itself.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const killAllOnExit = (): void => running.forEach((r) => killGroup(r.pid));
const onSignal = (signal: NodeJS.Signals): void => {
  if (process.listenerCount(signal) > 1) return;
  killAllOnExit();
  unwatchSignals();
  process.kill(process.pid, signal);
};
function watchSignals(): void {
  process.on('exit', killAllOnExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}
function unwatchSignals(): void {
  process.off('exit', killAllOnExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** `podman ps`, `qemu-img create`, `ip -batch`: the tool and its first argument, for messages. */
function describe(file: string, args: readonly string[]): string {
  const first = args.find((a) => !a.startsWith('-'));
  return `${basename(file)}${first ? ` ${first}` : ''}`;
}

type BoundedOptions = Pick<Options, 'env' | 'input'> & { reject?: boolean };

/**
 * Runs `file args` with the bound; resolves with execa's result (with `reject: false`, also for a
 * failed command). Throws CommandTimeoutError when the bound passes or the command is aborted,
 * whatever `reject` says: a command that did not answer has no result to read.
 */
export async function runBounded(file: string, args: readonly string[], bound: CommandBound, opts: BoundedOptions = {}): Promise<Result> {
  const command = describe(file, args);
  let killedFor: { why: 'timeout' | 'aborted'; reason?: string | undefined } | undefined;
  const child = execa(file, args, {
    env: opts.env,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    reject: opts.reject ?? true,
    // Its own process group: killing the group reaches the children of a wrapper script.
    detached: true,
  });
  const pid = child.pid;
  const kill = (why: 'timeout' | 'aborted', reason?: string): void => {
    if (killedFor) return;
    killedFor = { why, reason };
    if (pid !== undefined) killGroup(pid);
  };
  const timer = setTimeout(() => kill('timeout'), bound.timeoutMs);
  if (pid !== undefined) {
    if (running.size === 0) watchSignals();
    running.set(pid, { pid, bound, kill });
  }
  try {
    const r = await child;
    if (killedFor) throw new CommandTimeoutError(bound, command, killedFor.why, killedFor.reason);
    return r as Result;
  } catch (err) {
    if (killedFor) throw new CommandTimeoutError(bound, command, killedFor.why, killedFor.reason);
    throw err;
  } finally {
    clearTimeout(timer);
    if (pid !== undefined && running.delete(pid) && running.size === 0) unwatchSignals();
  }
}

/**
 * Kills the commands under way (only those that read state, with `readsOnly`), by pid and
 * process group; their callers get a CommandTimeoutError saying `reason`. Returns how many.
 */
export function abortCommands(reason: string, o: { readsOnly?: boolean } = {}): number {
  let n = 0;
  for (const r of [...running.values()]) {
    if (o.readsOnly && !r.bound.read) continue;
    r.kill('aborted', reason);
    n++;
  }
  return n;
}

/** How many commands are under way (for tests and the stop path's log). */
export function commandsRunning(): number {
  return running.size;
}

/**
 * Where `binary` would be run from (a path, or looked up on PATH as a shell would), when it is an
 * executable file; undefined otherwise. No process is spawned: for checks made on every pass.
 */
export function findExecutable(binary: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates = binary.includes('/') ? [binary] : path.split(':').filter(Boolean).map((dir) => join(dir, binary));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}
