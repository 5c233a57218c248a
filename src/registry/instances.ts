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
  /**
   * The spec it was started (or adopted) from, the one `specHash` names: a JSON object as an agent
   * then wrote it. Null when unknown (started before migration 005) or unreadable.
   */
  spec: Record<string, unknown> | null;
  /** The last health verdict an agent wrote (007); undefined when none or before 007. */
  health?: StoredHealth | undefined;
}

/** A workload's health as the agent last wrote it: see migrations/007_health.sql. */
export interface StoredHealth {
  status: 'starting' | 'healthy' | 'unhealthy';
  failures: number;
  output: string;
  checkedAt: string;
  since: string;
  /** The run it is about (its handle): a verdict of another run says nothing of this one. */
  run: string;
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
  /** Absent when a dry run reads an older schema as it is. */
  spec_json?: string | null;
  health_status?: string | null;
  health_failures?: number;
  health_output?: string | null;
  health_checked_at?: string | null;
  health_since?: string | null;
  health_run?: string | null;
}

const storedHealth = (r: Row): StoredHealth | undefined =>
  r.health_status === 'starting' || r.health_status === 'healthy' || r.health_status === 'unhealthy'
    ? { status: r.health_status, failures: r.health_failures ?? 0, output: r.health_output ?? '', checkedAt: r.health_checked_at ?? '', since: r.health_since ?? '', run: r.health_run ?? '' }
    : undefined;

/** The stored spec, if it is readable: a view of it only names fields, so a bad one is just unknown. */
function parseSpec(json: string | null | undefined): Record<string, unknown> | null {
  if (!json) return null;
  try {
    const v: unknown = JSON.parse(json);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
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
  spec: parseSpec(r.spec_json),
  health: storedHealth(r),
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

  /**
   * Records a successful start: new handle, hash and the spec of that hash (`spec`, canonical
   * JSON); restarts counted by the caller.
   */
  recordStarted(i: { workload: string; service: string; component: string; runtime: string; handle: string; specHash: string; spec?: string; restarted: boolean }): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `INSERT INTO instances (workload, service, component, runtime, handle, spec_hash, spec_json, started_at, restarts)
         VALUES (@workload, @service, @component, @runtime, @handle, @specHash, @spec, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), @inc)
         ON CONFLICT (workload) DO UPDATE SET service = excluded.service, component = excluded.component,
           runtime = excluded.runtime, handle = excluded.handle, spec_hash = excluded.spec_hash, spec_json = excluded.spec_json,
           started_at = excluded.started_at, restarts = instances.restarts + @inc`,
      )
      .run({ ...i, spec: i.spec ?? null, inc: i.restarted ? 1 : 0 }));
  }

  /**
   * Records an adopted workload's handle without touching its counters. `spec`: the desired spec
   * whose hash the workload carries (an adoption is planned only then).
   */
  recordAdopted(i: { workload: string; service: string; component: string; runtime: string; handle: string; specHash: string; spec?: string; startedAt: string | null }): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `INSERT INTO instances (workload, service, component, runtime, handle, spec_hash, spec_json, started_at)
         VALUES (@workload, @service, @component, @runtime, @handle, @specHash, @spec, @startedAt)
         ON CONFLICT (workload) DO UPDATE SET handle = excluded.handle, spec_hash = excluded.spec_hash,
           spec_json = excluded.spec_json, started_at = coalesce(excluded.started_at, instances.started_at)`,
      )
      .run({ ...i, spec: i.spec ?? null }));
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

  /** The agent's health verdict of a workload it runs (a row exists once it started or adopted it). */
  recordHealth(workload: string, h: StoredHealth): void {
    this.writes.record('instances', () => this.db
      .prepare(
        `UPDATE instances SET health_status = @status, health_failures = @failures, health_output = @output,
           health_checked_at = @checkedAt, health_since = @since, health_run = @run WHERE workload = @workload`,
      )
      .run({ workload, ...h }));
  }

  forget(workload: string): void {
    this.writes.record('instances', () => this.db.prepare('DELETE FROM instances WHERE workload = ?').run(workload));
  }
}
