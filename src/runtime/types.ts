/**
 * The runtime interface: what the agent needs from any way of running a workload. Shaped after
 * Nomad's driver interface. Adapters own their tool's quirks and never open the registry.
 */
import type { ComponentKey } from '../errors.js';
import type { ComponentSpec, RuntimeKind } from '../manifest/schema.js';

export type WorkloadState = 'running' | 'starting' | 'exited' | 'created' | 'paused' | 'stopping' | 'unknown';

/** One workload as the runtime sees it right now. */
export interface Observed {
  runtime: RuntimeKind;
  /** Workload name (podman name, QEMU -name). */
  name: string;
  /** Runtime handle: container id, QEMU pid. */
  id: string;
  /** From the workload's labels; undefined when the labels are unreadable. */
  key: ComponentKey | undefined;
  specHash: string | undefined;
  state: WorkloadState;
  exitCode: number | undefined;
  /** Why a workload that is not running ended, in words, when the runtime knows more than a code. */
  exitReason?: string | undefined;
  /** ISO time the workload last started, when the runtime knows it. */
  startedAt: string | undefined;
  /** Where an operator reaches it (IP, 127.0.0.1:PORT); undefined when it has no network. */
  address: string | undefined;
  /** How it is networked: 'bridge', 'slirp' for VMs; undefined for containers (no network). */
  network?: string | undefined;
  /** A running workload that cannot be reached through its network, and why (a VM's TAP is off its bridge). */
  networkProblem?: string | undefined;
}

/** Where and how a VM runs, decided by the agent: resolved files, leased ports, pinned key. */
export interface VmPlacement {
  /** Absolute paths, already checked against the allowed image directories. */
  files: { image?: string; kernel?: string; initrd?: string };
  /** The guest's SSH host key line to pin. */
  hostKey: string;
  net: VmNet;
}

export type VmNet =
  | { mode: 'slirp'; sshPort: number; forwards: Array<{ host: number; guest: number; protocol: 'tcp' | 'udp' }> }
  /** On the host-only bridge: its own TAP and a leased static IP (no DHCP, no NAT). */
  | { mode: 'bridge'; bridge: string; tap: string; ip: string; prefix: number; gateway: string };

/** Everything a runtime needs to start one workload; leases are already taken by the agent. */
export interface WorkloadSpec {
  name: string;
  key: ComponentKey;
  specHash: string;
  labels: Record<string, string>;
  spec: ComponentSpec;
  /** For unikernel components. */
  vm?: VmPlacement;
  /**
   * Aborted when the agent stops. A runtime whose start waits (a VM booting until SSH answers)
   * rolls the start back when it fires: nothing of it stays behind, and start rejects with
   * `signal.reason` itself. A runtime whose start is short may ignore it and finish.
   */
  signal?: AbortSignal;
  /**
   * The workload as the agent last saw it (its live view): `null` when it saw none by that name,
   * undefined when it does not know. A runtime may skip its own look-up on it (a podman call
   * saved on the way to a restart), but must stay correct when the hint is stale: a hint never
   * makes it touch a workload it would otherwise have refused.
   */
  seen?: Observed | null;
}

export interface Capabilities {
  available: boolean;
  /** Why not, when unavailable; tool versions and features when available. */
  detail: string;
}

/**
 * A runtime event that should wake the reconcile loop (a workload died, started, vanished), or a
 * gap: the watcher may have missed events (its stream broke or restarted late), so what was known
 * of this runtime must be listed again.
 */
export type RuntimeEvent = WorkloadEvent | { runtime: RuntimeKind; gap: true; why: string };

export interface WorkloadEvent {
  runtime: RuntimeKind;
  workload: string;
  status: string;
  exitCode: number | undefined;
  gap?: undefined;
  /** When it happened (ms since the epoch), by the runtime's own clock when it gives one. */
  at: number;
  /**
   * The workload as this event leaves it, when the event says enough to know (podman's events
   * carry the labels, id and exit code); `null` when the event says it is gone; undefined when
   * the agent has to look (one targeted inspect).
   */
  observed?: Observed | null;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  probe(): Promise<Capabilities>;
  /** Every workload carrying this agent's labels, running or not. Throws when it cannot tell. */
  list(): Promise<Observed[]>;
  /** One workload of this agent by name, or undefined when there is none. Throws when it cannot tell. */
  inspect?(name: string): Promise<Observed | undefined>;
  /**
   * Idempotent: a running workload of that name and spec hash is adopted as it is; a stopped one
   * with the same hash is started again; anything else of ours by that name is replaced.
   */
  start(w: WorkloadSpec): Promise<Observed>;
  /**
   * Graceful first, forced after `graceSeconds`. A workload already gone is not an error.
   * Resolves with how it stopped (for the events log): e.g. 'not running', 'powered off', 'killed'.
   */
  stop(name: string, graceSeconds: number): Promise<string>;
  /** Frees everything the workload holds. A workload already gone is not an error. */
  remove(name: string): Promise<void>;
  /** Calls `onEvent` for workload events until the returned function is called. */
  watch(onEvent: (e: RuntimeEvent) => void): () => void | Promise<void>;
  /** Frees what no workload owns any more (e.g. TAPs left by a crash); returns what it freed. */
  collectGarbage?(): Promise<string[]>;
  /**
   * Runs a command in the workload, streaming its output; resolves with the command's exit code
   * (126/127 from the command included). Rejects with an ExecError (exit 125) when the command
   * could not be run at all: no such workload, not running, unreachable. The command's stdin is
   * `io.stdin` until it ends, then closed (EOF); without `io.stdin` it is closed at once, so a
   * command that reads stdin never waits for input nobody sends.
   */
  exec(name: string, argv: string[], io: ExecIo): Promise<number>;
  /**
   * The workload's output so far (console log, container logs); with follow, until aborted.
   * `tail`: only the last N lines of what is there (then what follows, with follow). `since`
   * (epoch ms): only output from then on; a runtime whose output has no timestamps (a VM's serial
   * console) rejects it with a RuntimeError rather than guess.
   */
  logs(name: string, opts: LogsOptions): AsyncIterable<string>;
}

export interface LogsOptions {
  follow: boolean;
  signal?: AbortSignal;
  tail?: number;
  since?: number;
}

export interface ExecIo {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
  /** What the command reads on stdin; its end closes the command's stdin. Undefined: closed at once. */
  stdin?: NodeJS.ReadableStream;
}

/**
 * A start that waits, told as it goes (a VM booting until SSH answers): for an operator's progress
 * output only, never for decisions. `waiting` once when the wait begins, then `ready` or `failed`.
 */
export interface BootProgress {
  key: ComponentKey;
  workload: string;
  phase: 'waiting' | 'ready' | 'failed';
  /** When the wait began (epoch ms), the same in all three phases of one wait. */
  since: number;
}
