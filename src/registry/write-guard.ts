/**
 * Registry writes when the disk refuses them (full, I/O error, read-only). The agent must keep
 * supervising workloads then, so its own bookkeeping (events, instances rows, heartbeat) never
 * throws for such a cause: it is kept in memory (bounded), replayed in order, in transactions, once
 * the disk takes writes again, and reads of a table see the writes still queued for it. Writes that
 * decide something (a lease, the reconciler claim, desired state) never pretend: they replay the
 * queue first (so order holds) and throw RegistryUnwritableError when the disk still refuses.
 */
import { RegistryError } from '../errors.js';
import type { Db } from './open.js';

/** Why the disk refused a write, from the SQLite result code. */
export type DiskCause = 'full' | 'io' | 'readonly';

const CAUSE_TEXT: Record<DiskCause, string> = {
  full: 'the disk is full',
  io: 'the disk refused the write (I/O error)',
  readonly: 'the file or its filesystem is read-only',
};

export function diskCause(err: unknown): DiskCause | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL') return 'full';
  if (code.startsWith('SQLITE_IOERR')) return 'io';
  if (code.startsWith('SQLITE_READONLY')) return 'readonly';
  return undefined;
}

/** A write that had to happen now could not: nothing of it was written. */
export class RegistryUnwritableError extends RegistryError {
  constructor(
    readonly path: string,
    readonly diskCause: DiskCause,
    readonly detail: string,
  ) {
    super(`cannot write registry ${path}: ${CAUSE_TEXT[diskCause]} (${detail}); nothing was changed`);
  }
}

/** Logs a change once: the structural part of pino's Logger that the guard needs. */
export interface WritabilityLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface PendingWrite {
  table: string;
  /** A newer write with the same key replaces the older one (the heartbeat). */
  key?: string;
  run: () => void;
}

export class WriteGuard {
  /** ~10,000 small rows of memory at most; a day-long outage at a few writes a minute fits. */
  static readonly MAX_PENDING = 10_000;
  static readonly RETRY_MS = 2_000;
  /** Replayed per transaction: one commit per batch, and a refused batch leaves nothing half-done. */
  private static readonly BATCH = 500;

  private pending: PendingWrite[] = [];
  private failing: { cause: DiskCause; error: string } | undefined;
  private dropped = 0;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    readonly path: string,
    private readonly log?: WritabilityLog,
  ) {}

  /** The last write refused, and why; undefined while writes succeed. */
  state(): { writable: boolean; cause?: DiskCause; error?: string; queued: number; dropped: number } {
    return { writable: this.failing === undefined, ...this.failing, queued: this.pending.length, dropped: this.dropped };
  }

  /**
   * Bookkeeping: written now, or queued when the disk refuses (never throws for that). Inside a
   * caller's transaction it just runs: the transaction's owner decides.
   */
  record(table: string, run: () => void, key?: string): void {
    if (this.db.inTransaction) return run();
    if (this.pending.length === 0 || this.flush()) {
      try {
        run();
        this.cleared(0);
        return;
      } catch (err) {
        const cause = diskCause(err);
        if (!cause) throw err;
        this.refused(cause, err);
      }
    }
    this.enqueue({ table, key, run });
  }

  /** A write that decides something: after the queue, now, or RegistryUnwritableError. */
  decide<T>(run: () => T): T {
    if (this.db.inTransaction) return run();
    if (!this.flush()) throw new RegistryUnwritableError(this.path, this.failing!.cause, this.failing!.error);
    try {
      const v = run();
      this.cleared(0);
      return v;
    } catch (err) {
      const cause = diskCause(err);
      if (!cause) throw err;
      this.refused(cause, err);
      throw new RegistryUnwritableError(this.path, cause, (err as Error).message);
    }
  }

  /** Reads `table` as if its queued writes were done: replayed in a transaction, then rolled back. */
  read<T>(table: string, fn: () => T): T {
    const mine = this.pending.filter((w) => w.table === table);
    if (mine.length === 0 || this.db.inTransaction) return fn();
    // Outside any transaction (checked above): a transaction of our own, always rolled back.
    this.db.exec('BEGIN');
    try {
      for (const w of mine) {
        try {
          w.run(); // in the page cache only: nothing reaches the disk before a commit
        } catch {
          /* a replay the cache cannot hold: read without it */
        }
      }
      return fn();
    } finally {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    }
  }

  /** Replays the queue in order; true when it is empty afterwards. */
  flush(): boolean {
    if (this.db.inTransaction) return this.pending.length === 0;
    let replayed = 0;
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, WriteGuard.BATCH);
      try {
        this.db.transaction(() => {
          for (const w of batch) {
            try {
              w.run();
            } catch (err) {
              if (diskCause(err)) throw err;
              // Not the disk: this write is bad in itself (SQLite undid just that statement); skip it.
            }
          }
        }).immediate();
      } catch (err) {
        const cause = diskCause(err);
        if (!cause) throw err;
        this.refused(cause, err);
        return false;
      }
      this.pending.splice(0, batch.length);
      replayed += batch.length;
    }
    this.cleared(replayed);
    return true;
  }

  /** Last chance for queued writes (the agent stops): says how many are lost when the disk still refuses. */
  close(): void {
    this.stopRetry();
    if (this.pending.length === 0 || this.db.inTransaction) return;
    if (!this.flush()) {
      this.stopRetry();
      this.log?.error({ db: this.path, lost: this.pending.length, err: this.failing?.error }, 'registry still not writable: queued writes are lost');
    }
  }

  private enqueue(w: PendingWrite): void {
    if (w.key !== undefined) this.pending = this.pending.filter((p) => p.key !== w.key);
    this.pending.push(w);
    if (this.pending.length > WriteGuard.MAX_PENDING) {
      this.pending.shift();
      this.dropped++;
    }
    // Retry on a timer too: an idle agent must notice the disk came back (and say so).
    this.retry ??= setInterval(() => {
      try {
        this.flush();
      } catch (err) {
        this.log?.error({ db: this.path, err: (err as Error).message }, 'replaying queued registry writes failed');
      }
    }, WriteGuard.RETRY_MS).unref();
  }

  private refused(cause: DiskCause, err: unknown): void {
    if (this.failing) return;
    this.failing = { cause, error: (err as Error).message };
    this.log?.error(
      { db: this.path, cause, err: this.failing.error },
      `registry not writable: ${CAUSE_TEXT[cause]}; workloads are still supervised, bookkeeping is kept in memory and written when the disk takes writes again`,
    );
  }

  private cleared(replayed: number): void {
    if (this.pending.length === 0) this.stopRetry();
    if (!this.failing) return;
    this.failing = undefined;
    this.log?.warn({ db: this.path, replayed, dropped: this.dropped }, `registry writable again: ${replayed} queued write(s) replayed${this.dropped ? `, ${this.dropped} dropped` : ''}`);
    this.dropped = 0;
  }

  private stopRetry(): void {
    if (this.retry) clearInterval(this.retry);
    this.retry = undefined;
  }
}
