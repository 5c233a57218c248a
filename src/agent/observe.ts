/**
 * Lists every runtime at once; a runtime that fails to list is reported, never thrown, and a
 * runtime that does not answer holds up nobody but its own components. Each listing is bounded by
 * the runtime's own command timeout. Across passes (one observer per agent): a listing still
 * under way from an earlier pass is never started twice, and once a runtime has not answered, a
 * pass waits for it only briefly and reports it `unknown`; when it answers again the agent is
 * told, so a pass looks at once.
 */
import type { RuntimeKind } from '../manifest/schema.js';
import type { Runtime } from '../runtime/types.js';
import { CommandTimeoutError } from '../runtime/command.js';
import type { RuntimeListing } from './planner.js';

export interface ObserverOptions {
  /** How long a pass waits for a runtime that did not answer last time (its listing continues). */
  patienceMs?: number;
  /** A runtime that had stopped answering answered a listing again (a pass should look now). */
  onAnswered?: (kind: RuntimeKind) => void;
}

interface Pending {
  listing: Promise<RuntimeListing>;
  startedAt: number;
}

/** A listing that ended because a command did not answer (as opposed to one that failed). */
const unanswered = (err: unknown): boolean => err instanceof CommandTimeoutError || (err instanceof Error && err.cause instanceof CommandTimeoutError);

export class RuntimeObserver {
  private readonly pending = new Map<RuntimeKind, Pending>();
  /** Runtimes whose last listing did not answer, with why (e.g. `podman ps did not answer within 10 s`). */
  private readonly silent = new Map<RuntimeKind, string>();

  constructor(
    private readonly runtimes: Map<RuntimeKind, Runtime>,
    private readonly o: ObserverOptions = {},
  ) {}

  async observeAll(): Promise<Partial<Record<RuntimeKind, RuntimeListing>>> {
    const entries = await Promise.all([...this.runtimes].map(async ([kind, rt]) => [kind, await this.listOne(kind, rt)] as const));
    return Object.fromEntries(entries);
  }

  /** One runtime's listing, under the same rules. */
  observe(kind: RuntimeKind): Promise<RuntimeListing> {
    const rt = this.runtimes.get(kind);
    return rt ? this.listOne(kind, rt) : Promise.resolve({ ok: false, error: `no ${kind} runtime configured` });
  }

  /** A listing ended: it answered (even with an error), or a command of it did not (`silence` says which). */
  private settled(kind: RuntimeKind, silence: string | undefined): void {
    if (silence !== undefined) this.silent.set(kind, silence);
    else if (this.silent.delete(kind)) this.o.onAnswered?.(kind);
  }

  private async listOne(kind: RuntimeKind, rt: Runtime): Promise<RuntimeListing> {
    let p = this.pending.get(kind);
    if (!p) {
      const startedAt = Date.now();
      const listing = rt.list().then(
        (items): RuntimeListing => {
          this.settled(kind, undefined);
          return { ok: true, items };
        },
        (err: Error): RuntimeListing => {
          this.settled(kind, unanswered(err) ? err.message : undefined);
          return { ok: false, error: err.message };
        },
      );
      const mine: Pending = { listing, startedAt };
      p = mine;
      this.pending.set(kind, mine);
      void listing.then(() => {
        if (this.pending.get(kind) === mine) this.pending.delete(kind);
      });
    }
    // A runtime that answers is waited for (each of its commands has a bound); one that did not
    // answer last time gets a short wait, so every pass is not held for its whole bound.
    if (!this.silent.has(kind)) return p.listing;
    const patience = this.o.patienceMs ?? 1000;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), patience);
    });
    const l = await Promise.race([p.listing, gaveUp]);
    clearTimeout(timer);
    if (l) return l;
    const seconds = Math.round((Date.now() - p.startedAt) / 1000);
    return { ok: false, error: `${this.silent.get(kind) ?? 'no answer'}; the listing under way has waited ${seconds} s` };
  }
}
