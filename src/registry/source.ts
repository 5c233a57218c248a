/**
 * The registry's side of the NATS source: each change from the bucket is written in one
 * transaction together with the bucket position it came from (and its event), so a kill -9 can
 * never leave a change applied but its revision unrecorded, or the reverse. The source's state
 * (connected, disconnected since…) is kept in meta too, so `agent status` without a running
 * agent's API still tells it; it is written on connect, disconnect and apply only.
 */
import type { ServiceSpec } from '../manifest/schema.js';
import type { ApplyResult, DesiredRepo } from './desired.js';
import type { EventsRepo } from './events.js';
import type { MetaRepo } from './meta.js';
import type { Db } from './open.js';
import type { WriteGuard } from './write-guard.js';

/** Where the source is in the bucket: the stream (by its creation time) and the last revision applied. */
export interface SourcePosition {
  stream_created: string;
  revision: number;
}

export interface SourceRejection {
  key: string;
  revision: number;
  error: string;
}

/** What `agent status` shows about the desired-state source. */
export interface SourceState {
  kind: 'nats';
  urls: string[];
  bucket: string;
  node: string;
  /** `waiting`: connected, but the bucket does not exist yet (a node never creates it). */
  state: 'connecting' | 'connected' | 'waiting' | 'disconnected';
  since: string;
  revision: number | null;
  error: string | null;
  rejected: SourceRejection[];
}

const POSITION = 'nats_position';
const STATE = 'source';

/** A change the source applies: a service's new manifest, or its deletion. */
export type SourceChange = { kind: 'apply'; spec: ServiceSpec } | { kind: 'delete'; service: string };

export class SourceRepo {
  constructor(
    private readonly db: Db,
    private readonly writes: WriteGuard,
    private readonly desired: DesiredRepo,
    private readonly meta: MetaRepo,
    private readonly events: EventsRepo,
  ) {}

  position(): SourcePosition | undefined {
    const raw = this.meta.get(POSITION);
    if (!raw) return undefined;
    try {
      const v = JSON.parse(raw) as Partial<SourcePosition>;
      return typeof v.stream_created === 'string' && typeof v.revision === 'number' ? { stream_created: v.stream_created, revision: v.revision } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Moves the position on without a change (a refused value, a key of another service's deletion). */
  advance(pos: SourcePosition): void {
    this.writes.decide(() => this.db.transaction(() => this.meta.set(POSITION, JSON.stringify(pos))).immediate());
  }

  /**
   * Applies one change with origin nats and records `pos`, in one transaction. A service of
   * another origin is refused by the diff (ValidationError, nothing written); a deletion touches
   * only a nats service. Returns what changed (undefined for a deletion of nothing of ours).
   */
  apply(change: SourceChange, pos: SourcePosition, why: string): ApplyResult | undefined {
    const tx = this.db.transaction((): ApplyResult | undefined => {
      let result: ApplyResult | undefined;
      if (change.kind === 'apply') {
        result = this.desired.apply([change.spec], { origin: 'nats' });
        const name = change.spec.name;
        const what = result.created.length > 0 ? 'created' : result.updated.length > 0 ? `updated: ${result.updated[0]!.changes.join('; ')}` : undefined;
        if (what) this.events.append({ service: name, component: null, workload: null, action: 'apply', reason: why, outcome: 'ok', message: `service ${name} ${what}` });
      } else {
        const gone = this.db.prepare("DELETE FROM services WHERE name = ? AND origin = 'nats'").run(change.service).changes > 0;
        if (gone) {
          result = { created: [], updated: [], unchanged: [], pruned: [change.service] };
          this.events.append({ service: change.service, component: null, workload: null, action: 'delete', reason: why, outcome: 'ok', message: `service ${change.service} deleted` });
        }
      }
      this.meta.set(POSITION, JSON.stringify(pos));
      return result;
    });
    return this.writes.decide(() => tx.immediate());
  }

  /** A refused value, in the events log (bookkeeping: queued on a refusing disk). */
  refused(r: SourceRejection, service: string | null): void {
    this.events.append({ service, component: null, workload: null, action: 'refuse', reason: `nats ${r.key} revision ${r.revision}`, outcome: 'error', message: r.error });
  }

  /** Names of the services the source owns (origin nats). */
  owned(): string[] {
    return this.desired.readServices().filter((s) => s.origin === 'nats').map((s) => s.name);
  }

  state(): SourceState | undefined {
    const raw = this.meta.get(STATE);
    if (!raw) return undefined;
    try {
      const v = JSON.parse(raw) as SourceState;
      return v && v.kind === 'nats' && typeof v.state === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  setState(s: SourceState | undefined): void {
    if (s === undefined) this.meta.delete(STATE);
    else this.meta.set(STATE, JSON.stringify(s));
  }
}
