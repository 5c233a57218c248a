/**
 * Desired state: services and components. Writes are whole transactions; reads validate every
 * row, because a master may have written it with any SQLite client.
 */
import { ValidationError } from '../errors.js';
import { manifestSchemas, type ComponentSpec, type ServiceSpec } from '../manifest/schema.js';
import { issuesOf } from '../manifest/load.js';
import { diffDesired, type CurrentService, type DesiredDiff, type Origin, type ServiceUpdate } from '../manifest/diff.js';
import type { Db } from './open.js';
import { WriteGuard } from './write-guard.js';

export interface DesiredService {
  name: string;
  active: boolean;
  comment: string;
  updatedAt: string;
}

/** A component row as read: either a valid spec, or the reason it is not one. */
export type DesiredComponent =
  | { service: string; component: string; valid: true; spec: ComponentSpec }
  | { service: string; component: string; valid: false; error: string };

export interface DesiredState {
  services: DesiredService[];
  components: DesiredComponent[];
}

interface ComponentRow {
  service: string;
  name: string;
  runtime: string;
  image: string;
  cmd: string;
  env: string;
  memory_mib: number | null;
  vcpus: number | null;
  network: string;
  ports: string;
  volumes: string;
  restart: string;
  kernel: string | null;
  initrd: string | null;
  cmdline: string | null;
  image_sha256: string | null;
  ssh_host_key: string | null;
  /** JSON object or NULL (007); absent when a dry run reads an older schema as it is. */
  health?: string | null;
}

function rowToSpec(row: ComponentRow): DesiredComponent {
  const base = { service: row.service, component: row.name };
  let candidate: unknown;
  try {
    candidate = {
      service: row.service,
      name: row.name,
      runtime: row.runtime,
      // The column is NOT NULL since 001; a kernel-only VM stores ''.
      image: row.image === '' ? undefined : row.image,
      kernel: row.kernel ?? undefined,
      initrd: row.initrd ?? undefined,
      cmdline: row.cmdline ?? undefined,
      image_sha256: row.image_sha256 ?? undefined,
      ssh_host_key: row.ssh_host_key ?? undefined,
      cmd: JSON.parse(row.cmd),
      env: JSON.parse(row.env),
      memory: row.memory_mib ?? undefined,
      vcpus: row.vcpus ?? undefined,
      network: row.network,
      ports: JSON.parse(row.ports),
      volumes: JSON.parse(row.volumes),
      restart: row.restart,
      health: row.health ? JSON.parse(row.health) : undefined,
    };
  } catch (err) {
    return { ...base, valid: false, error: `unreadable JSON column: ${(err as Error).message}` };
  }
  const { ComponentSpecSchema } = manifestSchemas();
  const parsed = ComponentSpecSchema.safeParse(candidate);
  if (!parsed.success) {
    return { ...base, valid: false, error: issuesOf(parsed.error, [], ComponentSpecSchema).map((i) => `${i.field}: ${i.rule}`).join('; ') };
  }
  return { ...base, valid: true, spec: parsed.data };
}

/** What an apply did (or, in a dry run, would do). */
export interface ApplyResult {
  created: string[];
  updated: ServiceUpdate[];
  unchanged: string[];
  pruned: string[];
}

export interface ApplyOptions {
  /** Delete services absent from the set: all of them, or with origin master (nats) only the master's (nats'). */
  prune?: boolean;
  /** Recorded on every service written; default local. */
  origin?: Origin;
}

export class DesiredRepo {
  /** The last read's components by their raw row (see readUnlocked). */
  private parsed = new Map<string, DesiredComponent>();

  /** Writes here decide: on a disk that refuses them they throw RegistryUnwritableError, nothing written. */
  constructor(
    private readonly db: Db,
    private readonly writes = new WriteGuard(db, '(registry)'),
  ) {}

  /** One consistent snapshot: a master's commit between the two reads cannot tear it. */
  read(): DesiredState {
    return this.db.transaction(() => this.readUnlocked())();
  }

  private readUnlocked(): DesiredState {
    const services = (
      this.db.prepare('SELECT name, active, comment, updated_at FROM services ORDER BY name').all() as Array<{
        name: string;
        active: number;
        comment: string;
        updated_at: string;
      }>
    ).map((r) => ({ name: r.name, active: r.active === 1, comment: r.comment, updatedAt: r.updated_at }));
    // A dry run reads a registry not yet migrated to 007 as it is: no health column, no checks.
    const hasHealth = this.db.prepare("SELECT 1 FROM pragma_table_info('components') WHERE name = 'health'").get() !== undefined;
    const rows = this.db
      .prepare(
        `SELECT service, name, runtime, image, cmd, env, memory_mib, vcpus, network, ports, volumes, restart,
                kernel, initrd, cmdline, image_sha256, ssh_host_key${hasHealth ? ', health' : ''}
         FROM components ORDER BY service, name`,
      )
      .all() as ComponentRow[];
    // A row unchanged since the last read gives the same parsed component (and spec object, whose
    // hashes are kept by object: identity.ts): the agent reads the desired state at every pass and
    // every status request, and parsing hundreds of rows each time was most of a request's cost.
    const parsed = new Map<string, DesiredComponent>();
    const components = rows.map((row) => {
      const raw = JSON.stringify(row);
      const c = this.parsed.get(raw) ?? rowToSpec(row);
      parsed.set(raw, c);
      return c;
    });
    this.parsed = parsed;
    return { services, components };
  }

  /**
   * Services with their components and origin, as the diff compares them. Works on a read-only
   * connection to a registry not yet migrated to 004 (a dry run writes nothing, not even a
   * migration): every service is then local.
   */
  readServices(): CurrentService[] {
    return this.db.transaction(() => {
      const hasOrigin = this.db.prepare("SELECT 1 FROM pragma_table_info('services') WHERE name = 'origin'").get() !== undefined;
      const rows = this.db
        .prepare(`SELECT name, active, comment, ${hasOrigin ? 'origin' : "'local' AS origin"} FROM services ORDER BY name`)
        .all() as Array<{ name: string; active: number; comment: string; origin: Origin }>;
      const { components } = this.readUnlocked();
      return rows.map((r) => ({
        name: r.name,
        active: r.active === 1,
        comment: r.comment,
        origin: r.origin,
        components: components
          .filter((c) => c.service === r.name)
          .map((c) => (c.valid ? { name: c.component, spec: c.spec } : { name: c.component, invalid: c.error })),
      }));
    })();
  }

  /** What apply would do, from the state now; writes nothing. Throws what apply would refuse. */
  plan(specs: ServiceSpec[], opts: ApplyOptions = {}): ApplyResult {
    return planAgainst(this.readServices(), specs, opts);
  }

  /**
   * Creates or replaces services with their components, and prunes, in one transaction decided
   * inside it (a concurrent writer cannot slip between the diff and the write). Unchanged
   * services are not rewritten: an apply that changes nothing commits nothing.
   */
  apply(specs: ServiceSpec[], opts: ApplyOptions = {}): ApplyResult {
    const origin = opts.origin ?? 'local';
    const upsertService = this.db.prepare(
      `INSERT INTO services (name, active, comment, origin, updated_at)
       VALUES (@name, @active, @comment, @origin, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
       ON CONFLICT (name) DO UPDATE SET active = excluded.active, comment = excluded.comment, origin = excluded.origin,
                                        updated_at = excluded.updated_at`,
    );
    const deleteComponents = this.db.prepare('DELETE FROM components WHERE service = ?');
    const insertComponent = this.db.prepare(
      `INSERT INTO components (service, name, runtime, image, cmd, env, memory_mib, vcpus, network, ports, volumes, restart,
                               kernel, initrd, cmdline, image_sha256, ssh_host_key, health)
       VALUES (@service, @name, @runtime, @image, @cmd, @env, @memory, @vcpus, @network, @ports, @volumes, @restart,
               @kernel, @initrd, @cmdline, @image_sha256, @ssh_host_key, @health)`,
    );
    const findWorkload = this.db.prepare('SELECT service, name FROM components WHERE workload = ?');
    const deleteService = this.db.prepare('DELETE FROM services WHERE name = ?');

    const tx = this.db.transaction((): ApplyResult => {
      const d = diffOf(this.readServices(), specs, opts);
      const result = settled(d);
      const write = new Set([...d.created, ...d.updated.map((u) => u.name)]);
      const toWrite = specs.filter((s) => write.has(s.name));
      // Deletions first, so the workload-name check below sees the final state whatever the order.
      for (const name of d.pruned) deleteService.run(name);
      for (const s of toWrite) deleteComponents.run(s.name);
      for (const s of toWrite) {
        upsertService.run({ name: s.name, active: s.active ? 1 : 0, comment: s.comment, origin });
        s.components.forEach((c, i) => {
          const clash = findWorkload.get(`${s.name}-${c.name}`) as { service: string; name: string } | undefined;
          if (clash) {
            throw new ValidationError(`service ${s.name}`, [
              {
                field: `components[${i}].name`,
                rule: `workload name '${s.name}-${c.name}' is already used by ${clash.service}/${clash.name}; workload names (service-component) must be unique`,
              },
            ]);
          }
          insertComponent.run({
            service: s.name,
            name: c.name,
            runtime: c.runtime,
            image: c.image ?? '',
            kernel: c.kernel ?? null,
            initrd: c.initrd ?? null,
            cmdline: c.cmdline ?? null,
            image_sha256: c.image_sha256 ?? null,
            ssh_host_key: c.ssh_host_key ?? null,
            cmd: JSON.stringify(c.cmd),
            env: JSON.stringify(c.env),
            memory: c.memory ?? null,
            vcpus: c.vcpus ?? null,
            network: c.network,
            ports: JSON.stringify(c.ports),
            volumes: JSON.stringify(c.volumes),
            restart: c.restart,
            health: c.health ? JSON.stringify(c.health) : null,
          });
        });
      }
      return result;
    });
    return this.writes.decide(() => tx.immediate());
  }

  /** Returns false when there was no such service. */
  delete(name: string): boolean {
    return this.writes.decide(() => this.db.prepare('DELETE FROM services WHERE name = ?').run(name).changes > 0);
  }
}

/** The diff as a result, or the refusal: a service the applying origin must not take over. */
function settled(d: DesiredDiff): ApplyResult {
  if (d.refused.length > 0) {
    throw new ValidationError('apply', d.refused.map((r) => ({ field: r.name, rule: r.rule })));
  }
  return { created: d.created, updated: d.updated, unchanged: d.unchanged, pruned: d.pruned };
}

function diffOf(current: CurrentService[], specs: ServiceSpec[], opts: ApplyOptions): DesiredDiff {
  const origin = opts.origin ?? 'local';
  return diffDesired(current, specs, { origin, prune: !opts.prune ? 'none' : origin === 'local' ? 'all' : 'same-origin' });
}

/** What apply would do to a registry holding `current` (`[]`: one that does not exist yet). */
export function planAgainst(current: CurrentService[], specs: ServiceSpec[], opts: ApplyOptions = {}): ApplyResult {
  return settled(diffOf(current, specs, opts));
}
