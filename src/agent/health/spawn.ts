/**
 * The probes' one way to run a command: node:child_process directly (lighter than execa, which
 * counts at 100 probes a second), always within a bound after which the command is SIGKILLed, and
 * every command under way killed by `killProbes` when the agent stops. Output is kept to 4 KiB.
 */
import { spawn } from 'node:child_process';

export interface SpawnResult {
  code: number | null;
  /** stdout then stderr, trimmed. */
  output: string;
  timedOut: boolean;
  /** The command could not be started (ENOENT...). */
  error?: string | undefined;
}

const MAX_OUTPUT = 4096;
const under = new Set<() => void>();

export function runProbeCommand(file: string, args: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<SpawnResult> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const kill = (): void => void child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    under.add(kill);
    const done = (r: SpawnResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      under.delete(kill);
      resolve(r);
    };
    child.stdout.on('data', (b: Buffer) => (out.length < MAX_OUTPUT ? (out += b.toString('utf8')) : undefined));
    child.stderr.on('data', (b: Buffer) => (err.length < MAX_OUTPUT ? (err += b.toString('utf8')) : undefined));
    child.on('error', (e) => done({ code: null, output: '', timedOut, error: e.message }));
    child.on('close', (code) => done({ code, output: `${out}${out && err ? '\n' : ''}${err}`.trim().slice(0, MAX_OUTPUT), timedOut }));
  });
}

/** Registers a kill for `killProbes` (a long-lived probe process); returns its removal. */
export function trackKill(kill: () => void): () => void {
  under.add(kill);
  return () => void under.delete(kill);
}

/** Kills every probe command under way (the agent is stopping). */
export function killProbes(): void {
  for (const kill of under) kill();
}
