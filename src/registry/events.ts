/** The events log: what the agent did, to which component, why, and how it went. */
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

export type EventOutcome = 'ok' | 'error' | 'info';

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
    const trim = ++this.appended % 500 === 0;
    const row = { ...e, at: new Date().toISOString() }; // when it happened, also if written later
    this.writes.record('events', () => {
      this.db
        .prepare(
          'INSERT INTO events (at, service, component, workload, action, reason, outcome, message) VALUES (@at, @service, @component, @workload, @action, @reason, @outcome, @message)',
        )
        .run(row);
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
