/**
 * A runtime this node cannot offer (its tool is missing, or the agent has no adapter for it yet).
 * Listing fails with the reason, so its components show as `unknown` with that reason in status
 * and are never treated as missing; nothing is ever started half-way.
 */
import type { RuntimeKind } from '../manifest/schema.js';
import { RuntimeError } from '../errors.js';
import type { Capabilities, ExecIo, Observed, Runtime, RuntimeEvent, WorkloadSpec } from './types.js';

export class UnavailableRuntime implements Runtime {
  constructor(
    readonly kind: RuntimeKind,
    private readonly reason: string,
  ) {}

  async probe(): Promise<Capabilities> {
    return { available: false, detail: this.reason };
  }

  async list(): Promise<Observed[]> {
    throw new RuntimeError(this.kind, 'list', undefined, this.reason);
  }

  async start(w: WorkloadSpec): Promise<Observed> {
    throw new RuntimeError(this.kind, 'start', w.name, this.reason);
  }

  async stop(name: string): Promise<string> {
    throw new RuntimeError(this.kind, 'stop', name, this.reason);
  }

  async remove(name: string): Promise<void> {
    throw new RuntimeError(this.kind, 'remove', name, this.reason);
  }

  watch(_onEvent: (e: RuntimeEvent) => void): () => void {
    return () => undefined;
  }

  async exec(name: string, _argv: string[], _io: ExecIo): Promise<number> {
    throw new RuntimeError(this.kind, 'exec', name, this.reason);
  }

  // eslint-disable-next-line require-yield
  async *logs(name: string): AsyncIterable<string> {
    throw new RuntimeError(this.kind, 'logs', name, this.reason);
  }
}
