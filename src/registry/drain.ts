/**
 * Whether the node is drained (`agent drain`), and which workloads the agent stopped for a drain.
 * Both live in the meta table (no migration): the node's drain is the row `drain` (a JSON
 * `{since}`), written by the CLI with or without an agent running; each workload the agent stops
 * for a drain is a row `drain_stopped:<workload>`, written before the stop and deleted when the
 * workload starts again or is removed. The marks outlive `undrain`: they are how the planner knows,
 * after it, to start again a workload whose restart policy would leave it stopped.
 */
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

export interface DrainState {
  /** When the node was drained (ISO time). */
  since: string;
}

const NODE_KEY = 'drain';
const MARK = 'drain_stopped:';

export class DrainRepo {
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  /** The node's drain, or undefined when it is not drained (or the row is unreadable: a drain is never guessed). */
  state(): DrainState | undefined {
    const row = this.writes.read('meta', () => this.db.prepare('SELECT value FROM meta WHERE key = ?').get(NODE_KEY)) as { value: string } | undefined;
    if (!row) return undefined;
    try {
      const v = JSON.parse(row.value) as Partial<DrainState>;
      return typeof v.since === 'string' ? { since: v.since } : { since: '' };
    } catch {
      // A row someone wrote by hand that is not our JSON still says "drained": keep the node stopped.
      return { since: '' };
    }
  }

  /**
   * Drains the node: an operator's decision, so it throws when the disk refuses it. Already
   * drained: left as it is (the first drain's time is kept). Returns the drain in force.
   */
  drain(now: Date): { state: DrainState; already: boolean } {
    const tx = this.db.transaction((): { state: DrainState; already: boolean } => {
      const old = this.state();
      if (old) return { state: old, already: true };
      const state = { since: now.toISOString() };
      this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(NODE_KEY, JSON.stringify(state));
      return { state, already: false };
    });
    return this.writes.decide(() => tx.immediate());
  }

  /** Undrains the node; returns the drain it ended, or undefined when it was not drained. */
  undrain(): DrainState | undefined {
    const tx = this.db.transaction((): DrainState | undefined => {
      const old = this.state();
      if (old) this.db.prepare('DELETE FROM meta WHERE key = ?').run(NODE_KEY);
      return old;
    });
    return this.writes.decide(() => tx.immediate());
  }

  /** The agent is about to stop `workload` for the drain (bookkeeping, written first: a kill -9 mid-stop keeps it). */
  markStopped(workload: string, at: Date): void {
    this.writes.record('meta', () => this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(MARK + workload, JSON.stringify({ at: at.toISOString() })), `meta:${MARK}${workload}`);
  }

  /** The workload started again, was removed, or its stop failed: no longer stopped by a drain. */
  unmark(workload: string): void {
    this.writes.record('meta', () => this.db.prepare('DELETE FROM meta WHERE key = ?').run(MARK + workload), `meta:${MARK}${workload}`);
  }

  /** Workloads the agent stopped for a drain and has not started again. */
  stoppedByDrain(): Set<string> {
    const rows = this.writes.read('meta', () => this.db.prepare('SELECT key FROM meta WHERE substr(key, 1, ?) = ?').all(MARK.length, MARK)) as Array<{ key: string }>;
    return new Set(rows.map((r) => r.key.slice(MARK.length)));
  }
}
