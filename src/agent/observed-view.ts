/**
 * The agent's live view of what runs, kept between passes so that a pass woken by one event does
 * not list every runtime again (kubelet's PLEG cache is the model; it relists every second, this
 * view only when it must). Filled by a full listing per runtime at start, on every scheduled
 * resync, after a watcher reports a gap, and while a runtime's last listing failed; in between,
 * each runtime event and each action's result updates the one workload it concerns.
 *
 * Invariants:
 * - Newest wins, by the time an observation began (a listing: when it was asked for; an event: when
 *   it happened). An event during a listing therefore beats that listing, and a stale event
 *   replayed later changes nothing. An action's result counts from its call's end against
 *   listings (a listing begun mid-action may show the state before it) and from its beginning
 *   against events (its own events are not news, a death during it is).
 * - Truth over guesses: a runtime whose view cannot be trusted (never listed, a gap, a listing
 *   that failed) is listed again before it is planned with, and reads as a failed listing
 *   (`unknown`) when that listing fails; an event that does not say what the workload became
 *   makes the next read look at that workload (one targeted inspect) first.
 */
import type { RuntimeKind } from '../manifest/schema.js';
import type { Observed, Runtime, RuntimeEvent } from '../runtime/types.js';
import type { RuntimeObserver } from './observe.js';
import type { RuntimeListing } from './planner.js';

interface Entry {
  /** null: known to be gone (kept until a newer listing, so an older listing cannot revive it). */
  observed: Observed | null;
  at: number;
  /**
   * For an action's result: when its call ended. The events of the action itself (a start's
   * create and start, a removal's died and remove) happen before then and are not news; only a
   * workload that ended during a start (it died at once) is.
   */
  through?: number;
  /** Where it came from: a death told by an event outranks the result of a start it overlapped. */
  from: 'list' | 'event' | 'action';
}

/** How new an entry is against a listing or inspect that began at some time: an action counts from its end. */
const newest = (e: Entry): number => e.through ?? e.at;

const ended = (o: Observed | null | undefined): boolean => o === null || o?.state === 'exited';

interface RuntimeView {
  entries: Map<string, Entry>;
  /** Why this runtime must be listed before it is planned with; undefined when the view holds. */
  relist: string | undefined;
  /** The last listing's failure, while it is not listed again. */
  error: string | undefined;
  /** When the last listing that answered began (what the view holds of its absences dates from then). */
  listedAt: number | undefined;
  /** Workloads an event said changed without saying how, with the event's time. */
  dirty: Map<string, number>;
}

/** One runtime as the view holds it now (see ObservedView.snapshot). */
export interface RuntimeSnapshot {
  /** What the view holds, as a listing: failed when the last listing failed or none has answered yet. */
  listing: RuntimeListing;
  /** When the last listing that answered began (ms since the epoch); undefined before the first. */
  listedAt: number | undefined;
  /** Per workload the view holds (present or known gone): when what it holds was observed. */
  seenAt: Map<string, number>;
  /** Why the next pass lists this runtime again (a gap, a resync due), if it will. */
  relist: string | undefined;
}

export interface ViewRead {
  listings: Partial<Record<RuntimeKind, RuntimeListing>>;
  /** Per runtime: which runtimes this read listed in full (the others came from the view). */
  relisted: RuntimeKind[];
}

const sameState = (a: Observed | null, b: Observed | null): boolean =>
  a === b || (a !== null && b !== null && a.id === b.id && a.state === b.state && a.exitCode === b.exitCode && a.specHash === b.specHash);

export class ObservedView {
  private readonly views = new Map<RuntimeKind, RuntimeView>();

  constructor(
    private readonly runtimes: Map<RuntimeKind, Runtime>,
    private readonly observer: RuntimeObserver,
    private readonly clock: () => number = Date.now,
  ) {
    for (const kind of runtimes.keys()) {
      this.views.set(kind, { entries: new Map(), relist: 'never listed', error: undefined, listedAt: undefined, dirty: new Map() });
    }
  }

  /** The next read lists this runtime (or every runtime) in full. */
  relist(why: string, kind?: RuntimeKind): void {
    for (const [k, v] of this.views) if (kind === undefined || k === kind) v.relist ??= why;
  }

  /** Applies one runtime event; true when the view changed or must look (a pass is worth it). */
  onEvent(e: RuntimeEvent): boolean {
    const v = this.views.get(e.runtime);
    if (!v) return false;
    if (e.gap) {
      this.relist(e.why, e.runtime);
      return true;
    }
    const cur = v.entries.get(e.workload);
    if (cur && e.at < cur.at) return false; // older than what is known: a replay, or late
    if (cur?.through !== undefined && e.at <= cur.through && (cur.observed === null || !ended(e.observed))) return false; // the action's own
    if (e.observed === undefined) {
      v.dirty.set(e.workload, Math.max(e.at, v.dirty.get(e.workload) ?? 0));
      return true;
    }
    const changed = !cur || !sameState(cur.observed, e.observed);
    v.entries.set(e.workload, { observed: e.observed, at: e.at, from: 'event' });
    return changed;
  }

  /**
   * What an action left, as its runtime call returned it (null: removed). Its events are part of
   * it; only a start's workload that ended during the call (an event newer than the call's
   * beginning) stays as the event told it.
   */
  record(kind: RuntimeKind, name: string, observed: Observed | null, began: number, endedAt = this.clock()): void {
    const v = this.views.get(kind);
    if (!v) return;
    const cur = v.entries.get(name);
    if (cur && cur.at > endedAt) return;
    if (cur?.from === 'event' && cur.at > began && observed !== null && ended(cur.observed)) return;
    v.entries.set(name, { observed, at: began, through: endedAt, from: 'action' });
  }

  /** An action ended without saying what it left (it failed midway): look before planning with it. */
  lookAgain(kind: RuntimeKind, name: string): void {
    this.views.get(kind)?.dirty.set(name, this.clock());
  }

  /**
   * The workload as the view holds it, for a runtime that may skip its own look-up: undefined
   * whenever the view is not sure (never listed, a gap, a failed listing, an unexplained event).
   */
  seen(kind: RuntimeKind, name: string): Observed | null | undefined {
    const v = this.views.get(kind);
    if (!v || v.relist !== undefined || v.error !== undefined || v.dirty.has(name)) return undefined;
    const e = v.entries.get(name);
    return e ? e.observed : null;
  }

  /**
   * What the view holds now, each entry with its time: no listing, no inspect, no I/O (for the
   * local API's status and plan). A runtime never listed, or whose last listing failed, reads as a
   * failed listing, as a pass would plan with it; one with a relist or a look pending still shows
   * what it holds (the next pass corrects it).
   */
  snapshot(): Partial<Record<RuntimeKind, RuntimeSnapshot>> {
    const out: Partial<Record<RuntimeKind, RuntimeSnapshot>> = {};
    for (const [kind, v] of this.views) {
      const seenAt = new Map([...v.entries].map(([name, e]) => [name, e.at] as const));
      const listing: RuntimeListing =
        v.error !== undefined ? { ok: false, error: v.error } : v.listedAt === undefined ? { ok: false, error: `the agent has not listed the ${kind} runtime yet` } : this.listing(v);
      out[kind] = { listing, listedAt: v.listedAt, seenAt, relist: v.relist };
    }
    return out;
  }

  /** The listings a pass plans with: lists what needs it, looks at what events left unclear. */
  async read(): Promise<ViewRead> {
    const relisted: RuntimeKind[] = [];
    const entries = await Promise.all(
      [...this.runtimes].map(async ([kind, rt]) => {
        const v = this.views.get(kind)!;
        if (v.relist === undefined && v.error === undefined && v.dirty.size > 0) await this.lookAt(kind, rt, v);
        if (v.relist !== undefined || v.error !== undefined) {
          relisted.push(kind);
          const failed = await this.listAll(kind, v);
          if (failed) return [kind, failed] as const;
        }
        return [kind, this.listing(v)] as const;
      }),
    );
    return { listings: Object.fromEntries(entries), relisted };
  }

  private listing(v: RuntimeView): RuntimeListing {
    const items: Observed[] = [];
    for (const e of v.entries.values()) if (e.observed) items.push(e.observed);
    return { ok: true, items };
  }

  /** A full listing merged in (newest wins); returns the failed listing when it failed. */
  private async listAll(kind: RuntimeKind, v: RuntimeView): Promise<RuntimeListing | undefined> {
    const began = this.clock();
    const l = await this.observer.observe(kind);
    if (!l.ok) {
      v.error = l.error;
      return l;
    }
    const listed = new Map(l.items.map((o) => [o.name, o]));
    // What changed after the listing began (an event, an action that ended since) is newer than it.
    for (const [name, e] of v.entries) if (!listed.has(name) && newest(e) <= began) v.entries.delete(name);
    for (const [name, o] of listed) {
      const cur = v.entries.get(name);
      if (!cur || newest(cur) <= began) v.entries.set(name, { observed: o, at: began, from: 'list' });
    }
    for (const [name, at] of v.dirty) if (at <= began) v.dirty.delete(name);
    v.relist = undefined;
    v.error = undefined;
    v.listedAt = began;
    return undefined;
  }

  /** One targeted look per workload an event left unclear; a look that fails lists the runtime. */
  private async lookAt(kind: RuntimeKind, rt: Runtime, v: RuntimeView): Promise<void> {
    const names = [...v.dirty.keys()];
    if (!rt.inspect || names.length > 8) {
      v.relist ??= 'events to look at';
      return;
    }
    await Promise.all(
      names.map(async (name) => {
        const began = this.clock();
        try {
          const o = await rt.inspect!(name);
          const cur = v.entries.get(name);
          if (!cur || newest(cur) <= began) v.entries.set(name, { observed: o ?? null, at: began, from: 'list' });
          if ((v.dirty.get(name) ?? 0) <= began) v.dirty.delete(name);
        } catch {
          v.relist ??= `could not inspect ${name}`;
        }
      }),
    );
  }
}
