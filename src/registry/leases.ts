/** Leases: host ports (and, later, IPs) handed to one component each. PRIMARY KEY (kind, value). */
import type { ComponentKey } from '../errors.js';
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

export type LeaseKind = 'ip' | 'host_port';

export interface Lease {
  kind: LeaseKind;
  value: string;
  service: string;
  component: string;
  purpose: string;
}

export class LeasesRepo {
  /**
   * Releases are bookkeeping (queued while the disk refuses, and reads see them); a take decides
   * and throws RegistryUnwritableError then: a lease is never pretended.
   */
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  all(): Lease[] {
    return this.writes.read('leases', () => this.db.prepare('SELECT kind, value, service, component, purpose FROM leases ORDER BY kind, value').all() as Lease[]);
  }

  forComponent(key: ComponentKey): Lease[] {
    return this.writes.read('leases', () => this.db.prepare('SELECT kind, value, service, component, purpose FROM leases WHERE service = ? AND component = ?').all(key.service, key.component) as Lease[]);
  }

  /** Takes a lease; false when someone holds it already (the PRIMARY KEY decides, atomically). */
  take(kind: LeaseKind, value: string, key: ComponentKey, purpose: string): boolean {
    const r = this.writes.decide(() =>
      this.db
        .prepare('INSERT INTO leases (kind, value, service, component, purpose) VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, value) DO NOTHING')
        .run(kind, value, key.service, key.component, purpose),
    );
    return r.changes === 1;
  }

  release(kind: LeaseKind, value: string): void {
    this.writes.record('leases', () => this.db.prepare('DELETE FROM leases WHERE kind = ? AND value = ?').run(kind, value));
  }

  /** How many leases it held (counted before the delete, which may be queued). */
  releaseComponent(key: ComponentKey): number {
    const held = this.forComponent(key).length;
    this.writes.record('leases', () => this.db.prepare('DELETE FROM leases WHERE service = ? AND component = ?').run(key.service, key.component));
    return held;
  }
}
