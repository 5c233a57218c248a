/**
 * Every external command the agent runs to completion (podman, qemu-system, qemu-img, ip, nft,
 * systemctl) goes through `runBounded`: it has a bound, and when the bound passes (or the agent
 * stops) the command is killed with everything it started. Each command runs in its own process
 * group, so a wrapper script's children (a `sleep` holding the output pipe) die with it; otherwise
 * the call would wait for that pipe to close forever. The invariant: no command of the agent
 * outlives its bound, and none outlives the agent's stop.
 *
 * node:child_process rather than execa here (execa stays for the long-lived children and the
 * streamed `exec`/`logs`): a command run to completion needs only its output and exit, and execa's
 * load and first call were ~30 ms of every CLI call that lists (`agent status` without an agent
 * spawned `podman ps` at ~180 ms, ~35 ms of it in execa, which also opens process.stdin at load).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { basename, join } from 'node:path';
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
 * status`) does not reach it, and nothing ends such a child with its parent: the agent kills them
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

export interface BoundedOptions {
  /** Added to the agent's environment (not instead of it). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Written to the command's stdin, then closed; without it stdin is /dev/null. */
  input?: string | undefined;
  /** false: a failed command resolves (failed: true) instead of throwing CommandFailedError. */
  reject?: boolean;
}

/** How a command that ran ended, and what it printed (a final newline stripped, as a shell's $(...) does). */
export interface CommandResult {
  /** The command line, for messages. */
  command: string;
  stdout: string;
  stderr: string;
  /** undefined when it could not be started or was killed by a signal. */
  exitCode: number | undefined;
  signal: NodeJS.Signals | undefined;
  /** Not started, killed by a signal, or a non-zero exit. */
  failed: boolean;
  /** 'ENOENT' and the like when it could not be started. */
  code: string | undefined;
  /** One line saying how it failed ("Command failed with exit code 125: podman run ..."). */
  shortMessage: string;
}

/** A command that ran and failed (with `reject`, the default): its result, as an error. */
export class CommandFailedError extends Error implements CommandResult {
  readonly command: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | undefined;
  readonly signal: NodeJS.Signals | undefined;
  readonly failed = true;
  readonly code: string | undefined;
  readonly shortMessage: string;
  constructor(r: CommandResult) {
    super(r.stderr.trim() ? `${r.shortMessage}\n${r.stderr.trim()}` : r.shortMessage);
    this.name = 'CommandFailedError';
    ({ command: this.command, stdout: this.stdout, stderr: this.stderr, exitCode: this.exitCode, signal: this.signal, code: this.code, shortMessage: this.shortMessage } = r);
  }
}

/** What a failed command said: the last line of its stderr (tools end with their error), else how it failed. */
export const failureLine = (r: Pick<CommandResult, 'stderr' | 'shortMessage'>): string => r.stderr.trim().split('\n').filter(Boolean).pop() ?? r.shortMessage;

/** More output than any listing of ours gives: a command that floods is killed, not buffered. */
const MAX_OUTPUT_BYTES = 100 * 1024 * 1024;

const stripFinalNewline = (s: string): string => (s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s);

/**
 * Runs `file args` with the bound; resolves with its result (with `reject: false`, also for a
 * failed command). Throws CommandTimeoutError when the bound passes or the command is aborted,
 * whatever `reject` says: a command that did not answer has no result to read.
 */
export async function runBounded(file: string, args: readonly string[], bound: CommandBound, opts: BoundedOptions = {}): Promise<CommandResult> {
  const command = describe(file, args);
  const commandLine = [file, ...args].join(' ');
  let killedFor: { why: 'timeout' | 'aborted'; reason?: string | undefined } | undefined;
  const child = spawn(file, args, {
    env: opts.env === undefined ? process.env : { ...process.env, ...opts.env },
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
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
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let bytes = 0;
    let flooded = false;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_OUTPUT_BYTES) {
        flooded = true;
        if (pid !== undefined) killGroup(pid);
        return;
      }
      into.push(chunk);
    };
    child.stdout!.on('data', collect(out));
    child.stderr!.on('data', collect(err));
    if (opts.input !== undefined) {
      // A command that exits without reading its input closes the pipe: EPIPE is its answer, not ours.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
    const ended = await new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; spawnError?: NodeJS.ErrnoException }>((resolve) => {
      child.once('error', (e: NodeJS.ErrnoException) => resolve({ exitCode: null, signal: null, spawnError: e }));
      child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    if (killedFor) throw new CommandTimeoutError(bound, command, killedFor.why, killedFor.reason);
    const { exitCode, signal, spawnError } = ended;
    const r: CommandResult = {
      command: commandLine,
      stdout: stripFinalNewline(Buffer.concat(out).toString('utf8')),
      stderr: stripFinalNewline(Buffer.concat(err).toString('utf8')),
      exitCode: exitCode ?? undefined,
      signal: signal ?? undefined,
      failed: spawnError !== undefined || exitCode !== 0 || flooded,
      code: spawnError?.code,
      shortMessage: spawnError
        ? `Command failed with ${spawnError.code ?? 'an error'}: ${commandLine}\n${spawnError.message}`
        : flooded
          ? `Command printed more than ${MAX_OUTPUT_BYTES} bytes (killed): ${commandLine}`
          : signal
            ? `Command was killed with ${signal}: ${commandLine}`
            : `Command failed with exit code ${exitCode}: ${commandLine}`,
    };
    if (r.failed && (opts.reject ?? true)) throw new CommandFailedError(r);
    return r;
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
