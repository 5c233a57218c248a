/**
 * The events log: what the agent did, to which component, why, and how it went. An action that
 * touches a runtime is written as an intent (`pending`) before it starts and settled after, so a
 * kill -9 mid-action leaves a `pending` row, which the next agent marks `interrupted`: the log never
 * misses an action that may have changed what runs.
 */
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

/** `pending`: under way (or its agent died: see interruptPending); `interrupted`: it never finished. */
export type EventOutcome = 'ok' | 'error' | 'info' | 'pending' | 'interrupted';

/** An action's intent in the log: its row id once written, and the row itself until then. */
export interface EventIntent {
  id?: number;
  row: NewEvent & { at: string };
}

export interface AgentEvent {
  id: number;
  at: string;
  service: string | null;
  component: string | null;
  workload: string | null;
  action: string;
  reason: string;
  outcome: EventOutcome;
  message: string;
}

export type NewEvent = Omit<AgentEvent, 'id' | 'at'>;

/** Keep the log bounded: an agent that runs for years must not grow its registry without end. */
export const EVENTS_KEPT = 20_000;

export class EventsRepo {
  private appended = 0;
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  /** Bookkeeping: while the disk refuses writes, kept in memory and appended later, in order. */
  append(e: NewEvent): void {
    this.insert({ ...e, at: new Date().toISOString() });
  }

  /**
   * Writes an action's intent before the runtime is touched; returns the intent for `settle`.
   * On a refusing disk the insert waits in the write queue, and a `settle` before it is written
   * changes the queued row itself, so the log still gets the action, with its outcome.
   */
  begin(e: Omit<NewEvent, 'outcome' | 'message'>, pid = process.pid): EventIntent {
    const intent: EventIntent = { row: { ...e, outcome: 'pending', message: `agent pid ${pid}`, at: new Date().toISOString() } };
    this.insert(intent.row, (id) => (intent.id = id));
    return intent;
  }

  /** Records how an intent ended; an intent already settled (or pruned) is left as it is. */
  settle(intent: EventIntent, outcome: Exclude<EventOutcome, 'pending'>, message: string): void {
    if (intent.id === undefined) {
      // Not written yet (queued on a refusing disk): it will be inserted already settled.
      intent.row.outcome = outcome;
      intent.row.message = message;
      return;
    }
    const id = intent.id;
    this.writes.record('events', () => {
      this.db.prepare("UPDATE events SET outcome = ?, message = ? WHERE id = ? AND outcome = 'pending'").run(outcome, message, id);
    });
  }

  /**
   * Marks every open intent `interrupted`. Only for the registry's one reconciler, right after it
   * claimed it: the claim is taken only from a holder that ended, so no live process owns them.
   * Returns how many there were.
   */
  interruptPending(): number {
    return this.db
      .prepare("UPDATE events SET outcome = 'interrupted', message = 'the agent ended before this finished (' || message || ')' WHERE outcome = 'pending'")
      .run().changes;
  }

  private insert(row: NewEvent & { at: string }, onId?: (id: number) => void): void {
    const trim = ++this.appended % 500 === 0;
    this.writes.record('events', () => {
      const id = this.db
        .prepare(
          'INSERT INTO events (at, service, component, workload, action, reason, outcome, message) VALUES (@at, @service, @component, @workload, @action, @reason, @outcome, @message)',
        )
        .run(row).lastInsertRowid;
      onId?.(Number(id));
      if (trim) this.db.prepare('DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?').run(EVENTS_KEPT);
    });
  }

  recent(limit: number, filter: { service?: string; component?: string } = {}): AgentEvent[] {
    return this.db
      .prepare(
        `SELECT * FROM events WHERE (@service IS NULL OR service = @service) AND (@component IS NULL OR component = @component)
         ORDER BY id DESC LIMIT @limit`,
      )
      .all({ service: filter.service ?? null, component: filter.component ?? null, limit }) as AgentEvent[];
  }

  /**
   * For a follower of the log: rows written after `afterId` (oldest first, at most `limit`), and
   * the rows `ids` (intents it saw pending, to see them settled). Same filter as `recent`.
   */
  since(afterId: number, ids: number[], filter: { service?: string } = {}, limit = 1000): AgentEvent[] {
    const newer = this.db
      .prepare('SELECT * FROM events WHERE id > @afterId AND (@service IS NULL OR service = @service) ORDER BY id LIMIT @limit')
      .all({ afterId, service: filter.service ?? null, limit }) as AgentEvent[];
    if (ids.length === 0) return newer;
    const seen = this.db.prepare(`SELECT * FROM events WHERE id IN (${ids.map(() => '?').join(',')})`).all(...ids) as AgentEvent[];
    return [...seen, ...newer];
  }

  /** The id of the newest row (0 when the log is empty): where a follower starts. */
  lastId(): number {
    return (this.db.prepare('SELECT coalesce(max(id), 0) AS id FROM events').get() as { id: number }).id;
  }

  /** The newest event of each component, keyed `service/component`. */
  latestPerComponent(): Map<string, AgentEvent> {
    const rows = this.db
      .prepare(
        `SELECT e.* FROM events e JOIN (SELECT max(id) AS id FROM events WHERE service IS NOT NULL GROUP BY service, component) m ON e.id = m.id`,
      )
      .all() as AgentEvent[];
    return new Map(rows.map((r) => [`${r.service}/${r.component}`, r]));
  }
}
