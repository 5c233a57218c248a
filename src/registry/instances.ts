/** The agent's own records of the workloads it launched: handles, restart and backoff counters. */
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

export interface InstanceRecord {
  workload: string;
  service: string;
  component: string;
  runtime: string;
  handle: string | null;
  specHash: string | null;
  startedAt: string | null;
  restarts: number;
  failures: number;
  lastFailureAt: string | null;
  nextAttemptAt: string | null;
  lastError: string | null;
  failedSpecHash: string | null;
}

interface Row {
  workload: string;
  service: string;
  component: string;
  runtime: string;
  handle: string | null;
  spec_hash: string | null;
  started_at: string | null;
  restarts: number;
  failures: number;
  last_failure_at: string | null;
  next_attempt_at: string | null;
  last_error: string | null;
  failed_spec_hash: string | null;
}

const fromRow = (r: Row): InstanceRecord => ({
  workload: r.workload,
  service: r.service,
  component: r.component,
  runtime: r.runtime,
  handle: r.handle,
  specHash: r.spec_hash,
  startedAt: r.started_at,
  restarts: r.restarts,
  failures: r.failures,
  lastFailureAt: r.last_failure_at,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  failedSpecHash: r.failed_spec_hash,
});

export class InstancesRepo {
  /** Writes here are bookkeeping (see WriteGuard): queued while the disk refuses; reads see them. */
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  all(): InstanceRecord[] {
    return this.writes.read('instances', () => (this.db.prepare('SELECT * FROM instances ORDER BY workload').all() as Row[]).map(fromRow));
  }

  /** Records a successful start (or adoption): new handle and hash; restarts counted by the caller. */
  recordStarted(i: { workload: string; service: string; component: string; runtime: string; handle: string; specHash: string; restarted: boolean }): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `INSERT INTO instances (workload, service, component, runtime, handle, spec_hash, started_at, restarts)
         VALUES (@workload, @service, @component, @runtime, @handle, @specHash, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), @inc)
         ON CONFLICT (workload) DO UPDATE SET service = excluded.service, component = excluded.component,
           runtime = excluded.runtime, handle = excluded.handle, spec_hash = excluded.spec_hash,
           started_at = excluded.started_at, restarts = instances.restarts + @inc`,
      )
      .run({ ...i, inc: i.restarted ? 1 : 0 }));
  }

  /** Records an adopted workload's handle without touching its counters. */
  recordAdopted(i: { workload: string; service: string; component: string; runtime: string; handle: string; specHash: string; startedAt: string | null }): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `INSERT INTO instances (workload, service, component, runtime, handle, spec_hash, started_at)
         VALUES (@workload, @service, @component, @runtime, @handle, @specHash, @startedAt)
         ON CONFLICT (workload) DO UPDATE SET handle = excluded.handle, spec_hash = excluded.spec_hash,
           started_at = coalesce(excluded.started_at, instances.started_at)`,
      )
      .run(i));
  }

  recordFailure(
    workload: string,
    key: { service: string; component: string; runtime: string },
    f: { failures: number; nextAttemptAt: string; error: string; specHash: string },
  ): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `INSERT INTO instances (workload, service, component, runtime, failures, last_failure_at, next_attempt_at, last_error, failed_spec_hash)
         VALUES (@workload, @service, @component, @runtime, @failures, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), @nextAttemptAt, @error, @specHash)
         ON CONFLICT (workload) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at,
           next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, failed_spec_hash = excluded.failed_spec_hash`,
      )
      .run({ workload, ...key, ...f }));
  }

  /** Failures are counted per spec: a component whose spec changed starts from zero. */
  failuresFor(workload: string, specHash: string): number {
    const r = this.writes.read('instances', () => this.db.prepare('SELECT failures, failed_spec_hash FROM instances WHERE workload = ?').get(workload)) as { failures: number; failed_spec_hash: string | null } | undefined;
    return r && r.failed_spec_hash === specHash ? r.failures : 0;
  }

  clearFailures(workload: string): void {
    this.writes.record('instances', () => this.db
      .prepare('UPDATE instances SET failures = 0, next_attempt_at = NULL, last_error = NULL WHERE workload = ? AND failures > 0')
      .run(workload));
  }

  forget(workload: string): void {
    this.writes.record('instances', () => this.db.prepare('DELETE FROM instances WHERE workload = ?').run(workload));
  }
}
