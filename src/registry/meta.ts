/** Facts about the registry itself: the agent id, the running agent's heartbeat. */
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

/** Who reconciles this registry now: one process at a time (see claimReconciler). */
export interface ReconcilerClaim {
  pid: number;
  start: number;
  boot: string;
  /** `run` or `run --once` */
  mode: string;
  since: string;
}

export interface Heartbeat {
  pid: number;
  at: string;
}

export class MetaRepo {
  /** set, delete and beat are bookkeeping (queued while the disk refuses); the claim decides. */
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  get(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  set(key: string, value: string): void {
    // Only the newest value of a key matters: a queued older one is replaced.
    this.writes.record('meta', () => this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value), `meta:${key}`);
  }

  delete(key: string): void {
    this.writes.record('meta', () => this.db.prepare('DELETE FROM meta WHERE key = ?').run(key), `meta:${key}`);
  }

  /** The id in every workload label of this agent; created by the first migration. */
  agentId(): string {
    const id = this.get('agent_id');
    if (!id) throw new Error('registry has no agent_id (migration 001 not applied?)');
    return id;
  }

  heartbeat(): Heartbeat | undefined {
    const raw = this.get('heartbeat');
    if (!raw) return undefined;
    try {
      const v = JSON.parse(raw) as Heartbeat;
      return typeof v.pid === 'number' && typeof v.at === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  beat(pid: number, at: Date): void {
    this.set('heartbeat', JSON.stringify({ pid, at: at.toISOString() }));
  }

  /**
   * Takes the reconciler claim unless a live process holds it. Read and write happen in one
   * IMMEDIATE transaction, so two agents starting at once cannot both win. Returns the holder
   * that refused us, or undefined when the claim is ours.
   */
  claimReconciler(me: ReconcilerClaim, holderLive: (holder: ReconcilerClaim) => boolean): ReconcilerClaim | undefined {
    const tx = this.db.transaction((): ReconcilerClaim | undefined => {
      const holder = this.reconciler();
      if (holder && !(holder.pid === me.pid && holder.start === me.start) && holderLive(holder)) return holder;
      this.set('reconciler', JSON.stringify(me));
      return undefined;
    });
    return this.writes.decide(() => tx.immediate());
  }

  /** Gives the claim back, if it is still ours. */
  releaseReconciler(me: Pick<ReconcilerClaim, 'pid' | 'start'>): void {
    const tx = this.db.transaction(() => {
      const holder = this.reconciler();
      if (holder && holder.pid === me.pid && holder.start === me.start) this.delete('reconciler');
    });
    // Bookkeeping: a claim left behind names a process that is gone, and is taken over.
    this.writes.record('meta', () => tx.immediate(), 'meta:reconciler');
  }

  reconciler(): ReconcilerClaim | undefined {
    const raw = this.get('reconciler');
    if (!raw) return undefined;
    try {
      const v = JSON.parse(raw) as Partial<ReconcilerClaim>;
      const ok = typeof v.pid === 'number' && typeof v.start === 'number' && typeof v.boot === 'string';
      return ok ? { pid: v.pid!, start: v.start!, boot: v.boot!, mode: String(v.mode ?? 'run'), since: String(v.since ?? '') } : undefined;
    } catch {
      return undefined;
    }
  }
}
