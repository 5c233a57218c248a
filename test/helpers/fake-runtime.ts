// An in-memory Runtime for fast tests of the agent's logic (executor, reconciler, loop): workloads
// are entries in a map, every call is recorded, and a test makes a call wait or fail through the
// hooks. It keeps the interface's promises: start is idempotent per name, stop and remove of a
// workload already gone are not errors. Never used outside unit tests.
import type { RuntimeKind } from '../../src/manifest/schema.js';
import type { Capabilities, ExecIo, Observed, Runtime, RuntimeEvent, WorkloadSpec } from '../../src/runtime/types.js';

export interface FakeHooks {
  /** Runs before a listing answers; may wait, or throw (the runtime then cannot list). */
  list?: () => Promise<void> | void;
  /** Runs before a start takes effect; may wait, or throw (the start fails, nothing is created). */
  start?: (w: WorkloadSpec) => Promise<void> | void;
  stop?: (name: string) => Promise<void> | void;
}

/** A promise a test opens when it chooses. */
export interface Gate {
  promise: Promise<void>;
  open: () => void;
}

export function gate(): Gate {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

export class FakeRuntime implements Runtime {
  readonly workloads = new Map<string, Observed>();
  /** Every call, in order: e.g. 'list', 'start web-api', 'stop web-api', 'remove web-api'. */
  readonly calls: string[] = [];
  hooks: FakeHooks = {};
  private readonly listeners = new Set<(e: RuntimeEvent) => void>();
  private nextId = 1;

  constructor(readonly kind: RuntimeKind = 'container') {}

  /** How many times `op` was called (e.g. 'list', 'start web-api'). */
  count(op: string): number {
    return this.calls.filter((c) => c === op).length;
  }

  async probe(): Promise<Capabilities> {
    return { available: true, detail: 'fake' };
  }

  async list(): Promise<Observed[]> {
    this.calls.push('list');
    await this.hooks.list?.();
    return [...this.workloads.values()].map((o) => ({ ...o }));
  }

  async start(w: WorkloadSpec): Promise<Observed> {
    this.calls.push(`start ${w.name}`);
    await this.hooks.start?.(w);
    const old = this.workloads.get(w.name);
    if (old?.state === 'running' && old.specHash === w.specHash) return { ...old };
    const o: Observed = {
      runtime: this.kind,
      name: w.name,
      id: `fake-${this.nextId++}`,
      key: w.key,
      specHash: w.specHash,
      state: 'running',
      exitCode: undefined,
      startedAt: new Date().toISOString(),
      address: undefined,
    };
    this.workloads.set(w.name, o);
    return { ...o };
  }

  async stop(name: string): Promise<string> {
    this.calls.push(`stop ${name}`);
    await this.hooks.stop?.(name);
    const o = this.workloads.get(name);
    if (!o || o.state !== 'running') return 'not running';
    this.workloads.set(name, { ...o, state: 'exited', exitCode: 0 });
    return 'stopped';
  }

  async remove(name: string): Promise<void> {
    this.calls.push(`remove ${name}`);
    this.workloads.delete(name);
  }

  /** A workload ends behind the agent's back; watchers hear a `died` event. */
  kill(name: string, exitCode = 137): void {
    const o = this.workloads.get(name);
    if (!o) throw new Error(`fake runtime: no workload ${name}`);
    const observed = { ...o, state: 'exited' as const, exitCode };
    this.workloads.set(name, observed);
    this.emit({ runtime: this.kind, workload: name, status: 'died', exitCode, at: Date.now(), observed });
  }

  emit(e: RuntimeEvent): void {
    for (const l of this.listeners) l(e);
  }

  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    this.listeners.add(onEvent);
    return () => this.listeners.delete(onEvent);
  }

  async exec(_name: string, _argv: string[], _io: ExecIo): Promise<number> {
    return 0;
  }

  async *logs(): AsyncIterable<string> {
    // no output
  }
}
