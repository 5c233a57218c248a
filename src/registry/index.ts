/** The registry: the only module that speaks SQL. One object, typed repositories. */
import { DesiredRepo } from './desired.js';
import { EventsRepo } from './events.js';
import { InstancesRepo } from './instances.js';
import { LeasesRepo } from './leases.js';
import { MetaRepo } from './meta.js';
import { openDatabase, type Db, type OpenOptions } from './open.js';

export type { DesiredComponent, DesiredService, DesiredState } from './desired.js';
export type { AgentEvent, EventOutcome, NewEvent } from './events.js';
export type { InstanceRecord } from './instances.js';
export type { Heartbeat, ReconcilerClaim } from './meta.js';
export type { Lease, LeaseKind } from './leases.js';

export class Registry {
  readonly desired: DesiredRepo;
  readonly instances: InstancesRepo;
  readonly events: EventsRepo;
  readonly meta: MetaRepo;
  readonly leases: LeasesRepo;

  private constructor(
    readonly path: string,
    private readonly db: Db,
  ) {
    this.desired = new DesiredRepo(db);
    this.instances = new InstancesRepo(db);
    this.events = new EventsRepo(db);
    this.meta = new MetaRepo(db);
    this.leases = new LeasesRepo(db);
  }

  static open(path: string, opts: OpenOptions = {}): Registry {
    return new Registry(path, openDatabase(path, opts));
  }

  /**
   * Changes whenever another connection commits to the file (a master's push); our own writes
   * do not change it. Cheap enough to poll a few times a second.
   */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
