/** The registry: the only module that speaks SQL. One object, typed repositories. */
import { DesiredRepo } from './desired.js';
import { DrainRepo } from './drain.js';
import { EventsRepo } from './events.js';
import { InstancesRepo } from './instances.js';
import { LeasesRepo } from './leases.js';
import { MetaRepo } from './meta.js';
import { SourceRepo } from './source.js';
import { openDatabase, type Db, type OpenOptions } from './open.js';
import { WriteGuard, type WritabilityLog } from './write-guard.js';

export type { DesiredComponent, DesiredService, DesiredState } from './desired.js';
export type { DrainState } from './drain.js';
export type { AgentEvent, EventOutcome, NewEvent } from './events.js';
export type { InstanceRecord, StoredHealth } from './instances.js';
export type { Heartbeat, ReconcilerClaim } from './meta.js';
export type { Lease, LeaseKind } from './leases.js';
export type { SourceChange, SourcePosition, SourceRejection, SourceState } from './source.js';
export { RegistryUnwritableError, type DiskCause } from './write-guard.js';
export { registryWritability, type RegistryWritability } from './writable.js';

export class Registry {
  readonly desired: DesiredRepo;
  readonly instances: InstancesRepo;
  readonly events: EventsRepo;
  readonly meta: MetaRepo;
  readonly leases: LeasesRepo;
  /** Whether the node is drained, and which workloads a drain stopped (meta rows). */
  readonly drain: DrainRepo;
  /** The NATS source's changes and its position in the bucket. */
  readonly source: SourceRepo;
  /** Every write goes through it: bookkeeping is queued while the disk refuses, decisions throw. */
  readonly writes: WriteGuard;

  private constructor(
    readonly path: string,
    private readonly db: Db,
    log?: WritabilityLog,
  ) {
    this.writes = new WriteGuard(db, path, log);
    this.desired = new DesiredRepo(db, this.writes);
    this.instances = new InstancesRepo(db, this.writes);
    this.events = new EventsRepo(db, this.writes);
    this.meta = new MetaRepo(db, this.writes);
    this.leases = new LeasesRepo(db, this.writes);
    this.drain = new DrainRepo(db, this.writes);
    this.source = new SourceRepo(db, this.writes, this.desired, this.meta, this.events);
  }

  /** `log` hears, once each, when the registry stops taking writes and when it takes them again. */
  static open(path: string, opts: OpenOptions & { log?: WritabilityLog } = {}): Registry {
    return new Registry(path, openDatabase(path, opts), opts.log);
  }

  /**
   * Changes whenever another connection commits to the file (a master's push); our own writes
   * do not change it. Cheap enough to poll a few times a second.
   */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  close(): void {
    if (!this.db.open) return;
    this.writes.close();
    this.db.close();
  }
}
