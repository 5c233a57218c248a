/**
 * podman's REST API service (`podman system service --time 0 unix://SOCKET`) as a part of a running
 * agent: started as its child, bound to its life (setpriv --pdeathsig TERM, MCP_AGENT_ID in its
 * environment like every helper), waited on until `_ping` answers, started again with a backoff
 * when it exits, and ended (its socket and directory removed) when the agent's watch ends. Or a
 * socket someone else serves (`podman.api_socket`): then it is only pinged, never started.
 * The socket lies beside the registry (defaultApiSocket); a service killed with the agent leaves
 * it there, and the next start removes it.
 *
 * Invariant: `ready()` hands out the API only while the service is known to answer; anything else
 * (starting, exited, a request that found it gone or hung) is undefined, and the caller uses the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { boundToAgent, helperExited } from '../child-lifetime.js';
import { PodmanApi, type ApiFailureKind } from './podman-api.js';

/** Structured log lines (pino's shape): what the service does is worth an operator's line. */
export interface RuntimeLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PodmanServiceOptions {
  binary: string;
  /** The service's environment (podman's settings, MCP_AGENT_ID). */
  env: Record<string, string>;
  socketPath: string;
  /** A socket someone else serves: pinged, never started or removed. */
  external: boolean;
  /** How long a fresh service may take to answer `_ping`; past it, it is killed and started again. */
  readyTimeoutMs: number;
  log?: RuntimeLog | undefined;
}

/** The longest path a unix socket may have (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * Where the agent's own service listens: beside the registry (the agent's home, which a test or an
 * uninstall removes with it), or under /run/mcp-agent/<agent id>/ when that path is too long.
 */
export function defaultApiSocket(home: string, agentId: string): string {
  const beside = join(home, 'podman.sock');
  return Buffer.byteLength(beside) <= MAX_SOCKET_PATH ? beside : `/run/mcp-agent/${agentId}/podman.sock`;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 60_000;
/** A service that answered this long before it ended starts again at the base delay. */
const STABLE_MS = 60_000;
const PING_EVERY_MS = 25;

export class PodmanService {
  private api: PodmanApi | undefined;
  private child: ChildProcess | undefined;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private readySince = 0;
  /** The directory this service made for its socket (removed with it); undefined when it existed. */
  private madeDir: string | undefined;

  constructor(private readonly o: PodmanServiceOptions) {}

  get socketPath(): string {
    return this.o.socketPath;
  }

  /** The API while the service answers; undefined means: use the CLI. */
  ready(): PodmanApi | undefined {
    return this.api;
  }

  start(): void {
    if (this.o.external) void this.connect();
    else this.launch();
  }

  /**
   * A request found the service gone (`unreachable`) or hung (`timeout`): the API is not used until
   * the service answers again. Ours is asked once more, and killed (then started again) if silent.
   */
  lost(kind: ApiFailureKind, why: string): void {
    const api = this.api;
    if (!api || this.stopped || kind === 'refused') return;
    this.api = undefined;
    api.close();
    this.o.log?.warn({ socket: this.o.socketPath, why }, 'the podman API service did not answer: containers are handled through the podman CLI until it does');
    if (this.o.external) return this.later(() => void this.connect());
    const child = this.child;
    void new PodmanApi(this.o.socketPath).ping(1000).then((ok) => {
      if (this.stopped || child !== this.child) return;
      if (ok) this.becameReady(new PodmanApi(this.o.socketPath));
      else if (child) killTree(child, 'SIGKILL'); // its exit starts it again
    });
  }

  /**
   * Ends the service (ours: SIGTERM, its socket and directory removed); nothing starts again.
   * Resolves once it exited (bounded): an agent that exits first leaves it running in a systemd unit.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.api?.close();
    this.api = undefined;
    if (this.o.external) return;
    const child = this.child;
    this.child = undefined;
    this.removeSocket();
    if (child) await endTree(child);
  }

  private launch(): void {
    if (this.stopped) return;
    this.removeSocket(); // left by a service killed with the agent (SIGKILL removes nothing)
    try {
      this.madeDir ??= mkdirSync(dirname(this.o.socketPath), { recursive: true, mode: 0o700 }) ? dirname(this.o.socketPath) : undefined;
    } catch (err) {
      this.o.log?.warn({ socket: this.o.socketPath, err: (err as Error).message }, 'cannot make the podman API socket\'s directory: using the podman CLI');
      return this.later(() => this.launch());
    }
    // SIGTERM when the agent dies: podman then finishes the requests under way (a start holds off
    // its shutdown) and exits; SIGKILL in the middle of a start left an untracked container process.
    const [file, args] = boundToAgent(this.o.binary, ['system', 'service', '--time', '0', `unix://${this.o.socketPath}`], 'TERM');
    // Its own process group: podman may re-exec itself into a child (seen inside a container
    // without CAP_SYS_ADMIN: `_CONTAINERS_USERNS_CONFIGURED=init`), and stop() must end both.
    const child = spawn(file, args, { env: { ...process.env, ...this.o.env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => void (stderr = (stderr + c.toString('utf8')).slice(-2000)));
    child.on('error', () => undefined); // spawn failures also end in 'exit' / 'close'
    child.on('close', (code, signal) => {
      if (child !== this.child) return; // ended by stop(), or replaced
      this.child = undefined;
      this.api?.close();
      this.api = undefined;
      if (this.stopped) return;
      if (this.readySince > 0 && Date.now() - this.readySince >= STABLE_MS) this.failures = 0;
      this.readySince = 0;
      const last = stderr.trim().split('\n').filter(Boolean).pop();
      this.o.log?.warn({ socket: this.o.socketPath, exit: code ?? signal, stderr: last }, 'the podman API service ended: using the podman CLI until it is started again');
      this.later(() => this.launch());
    });
    const deadline = Date.now() + this.o.readyTimeoutMs;
    const api = new PodmanApi(this.o.socketPath);
    const waitReady = async (): Promise<void> => {
      while (!this.stopped && child === this.child) {
        if (await api.ping(Math.max(100, deadline - Date.now()))) return this.becameReady(api, child.pid);
        if (Date.now() >= deadline) {
          this.o.log?.warn({ socket: this.o.socketPath, pid: child.pid }, `the podman API service did not answer within ${this.o.readyTimeoutMs} ms: killed, started again later`);
          killTree(child, 'SIGKILL');
          return;
        }
        await new Promise((r) => setTimeout(r, PING_EVERY_MS));
      }
      api.close();
    };
    void waitReady();
  }

  /** Pings a socket someone else serves until it answers (with the backoff between tries). */
  private async connect(): Promise<void> {
    if (this.stopped) return;
    const api = new PodmanApi(this.o.socketPath);
    if (await api.ping(this.o.readyTimeoutMs)) return this.becameReady(api);
    api.close();
    if (this.failures === 0) this.o.log?.warn({ socket: this.o.socketPath }, 'the podman API socket does not answer: using the podman CLI, trying again later');
    this.later(() => void this.connect());
  }

  private becameReady(api: PodmanApi, pid?: number): void {
    if (this.stopped) return api.close();
    this.api = api;
    this.readySince = Date.now();
    this.o.log?.info({ socket: this.o.socketPath, pid }, 'podman API service ready: containers are listed, inspected and restarted through it');
  }

  private later(fn: () => void): void {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 20);
    clearTimeout(this.timer);
    this.timer = setTimeout(fn, delay);
    this.timer.unref();
  }

  /** The socket file, and its directory when this service made it (only ever an empty one). */
  private removeSocket(): void {
    rmSync(this.o.socketPath, { force: true });
    if (!this.stopped || this.madeDir === undefined) return;
    try {
      rmdirSync(this.madeDir);
    } catch {
      /* not empty, or not there */
    }
  }
}

/** SIGTERM to the service's group; resolves when it exited (bounded: helperExited). */
function endTree(child: ChildProcess): Promise<void> {
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
  killTree(child, 'SIGTERM');
  return helperExited(exited);
}

/**
 * Signals the service's whole process group (a re-exec'd podman child included), and lets go of
 * its stderr: a process that outlives the signal must not hold the agent's event loop open (seen
 * under systemd: the agent logged "stopped", then waited for the orphan until TimeoutStopSec).
 */
function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    child.kill(signal); // no group (already gone, or not a group leader)
  }
  child.stderr?.destroy();
  child.unref();
}
