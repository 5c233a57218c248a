/**
 * What an apply would do to the registry: which services it creates, updates (and which fields),
 * leaves unchanged, prunes, or must refuse. Pure: the registry reads the current state, this
 * decides, the registry writes exactly the decision (and a dry run prints it). Invariant: a
 * service whose every field and component equals the wanted one is `unchanged`, never rewritten.
 */
import type { ComponentSpec, ServiceSpec } from './schema.js';

/**
 * Who applied a service: an operator on this node, a master pushing the fleet's state (SSH), or
 * the agent's NATS source (the fleet's KV bucket). Only local and master can be given to `apply`.
 */
export type Origin = 'local' | 'master' | 'nats';
export const ORIGINS: readonly Origin[] = ['local', 'master', 'nats'];
/** The origins `agent apply --origin` takes: nats is the agent's own source's. */
export const APPLY_ORIGINS: readonly Origin[] = ['local', 'master'];

/** A component as the registry holds it: a valid spec, or a row that fails the schema. */
export type CurrentComponent = { name: string; spec: ComponentSpec } | { name: string; invalid: string };

export interface CurrentService {
  name: string;
  active: boolean;
  comment: string;
  origin: Origin;
  components: CurrentComponent[];
}

export interface ServiceUpdate {
  name: string;
  /** For a person: `components[api].memory 64 → 96`, `components added: x`, `active true → false`. */
  changes: string[];
}

export interface DesiredDiff {
  created: string[];
  updated: ServiceUpdate[];
  unchanged: string[];
  pruned: string[];
  /** Services this apply must not touch: the whole apply is refused when any is listed. */
  refused: Array<{ name: string; rule: string }>;
}

/**
 * `all`: the registry ends up holding exactly `wanted` (`apply --prune -f DIR`).
 * `same-origin`: only services of the applying origin that are absent from `wanted` go (a
 * master's prune leaves what an operator applied locally).
 */
export type PruneScope = 'none' | 'all' | 'same-origin';

export function diffDesired(current: CurrentService[], wanted: ServiceSpec[], opts: { origin: Origin; prune: PruneScope }): DesiredDiff {
  const out: DesiredDiff = { created: [], updated: [], unchanged: [], pruned: [], refused: [] };
  const byName = new Map(current.map((s) => [s.name, s]));
  for (const w of wanted) {
    const cur = byName.get(w.name);
    if (!cur) {
      out.created.push(w.name);
      continue;
    }
    if (opts.origin !== 'local' && cur.origin === 'local') {
      out.refused.push({ name: w.name, rule: `service ${w.name} was applied locally on this node: delete it there first` });
      continue;
    }
    // Neither fleet path takes over the other's service: a master over SSH and the NATS bucket
    // would otherwise flip it back and forth, each pruning what the other sent.
    if (opts.origin !== 'local' && cur.origin !== opts.origin) {
      const rule = cur.origin === 'nats' ? `service ${w.name} comes from the fleet's NATS bucket on this node: change or delete its key there first` : `service ${w.name} was applied by ${cur.origin} on this node: delete it there first`;
      out.refused.push({ name: w.name, rule });
      continue;
    }
    const changes = serviceChanges(cur, w, opts.origin);
    if (changes.length === 0) out.unchanged.push(w.name);
    else out.updated.push({ name: w.name, changes });
  }
  if (opts.prune !== 'none') {
    const keep = new Set(wanted.map((s) => s.name));
    for (const s of current) {
      if (keep.has(s.name)) continue;
      if (opts.prune === 'all' || s.origin === opts.origin) out.pruned.push(s.name);
    }
  }
  return out;
}

function serviceChanges(cur: CurrentService, w: ServiceSpec, origin: Origin): string[] {
  const changes: string[] = [];
  if (cur.origin !== origin) changes.push(`origin ${cur.origin} → ${origin}`);
  if (cur.active !== w.active) changes.push(`active ${cur.active} → ${w.active}`);
  if (cur.comment !== w.comment) changes.push(`comment ${show(cur.comment)} → ${show(w.comment)}`);
  const had = new Map(cur.components.map((c) => [c.name, c]));
  const wants = new Set(w.components.map((c) => c.name));
  const added = w.components.filter((c) => !had.has(c.name)).map((c) => c.name);
  const removed = cur.components.filter((c) => !wants.has(c.name)).map((c) => c.name);
  if (added.length > 0) changes.push(`components added: ${added.join(', ')}`);
  if (removed.length > 0) changes.push(`components removed: ${removed.join(', ')}`);
  for (const c of w.components) {
    const before = had.get(c.name);
    if (!before) continue;
    if ('invalid' in before) {
      changes.push(`components[${c.name}] replaces an invalid registry row (${before.invalid})`);
      continue;
    }
    for (const change of specChanges(before.spec, c)) changes.push(`components[${c.name}].${change}`);
  }
  return changes;
}

/**
 * What changed from one component spec to another, field by field, for a person: `memory 64 → 96`,
 * `env.FOO added`, `env.BAR 1 → 2`, `cmd ["sleep","1"] → ["sleep","2"]`. `fields` limits the
 * comparison (the planner passes the fields that shape a workload); by default every field either
 * sets. `before` may be a spec stored by an older agent: any JSON object. Empty when equal.
 */
export function specChanges(before: object, after: object, fields: readonly string[] = componentFields(before, after)): string[] {
  const changes: string[] = [];
  for (const field of fields) {
    const a = (before as Record<string, unknown>)[field];
    const b = (after as Record<string, unknown>)[field];
    if (canonical(a) === canonical(b)) continue;
    if (isStringMap(a) && isStringMap(b)) changes.push(...mapChanges(field, a, b));
    else changes.push(`${field} ${show(a)} → ${show(b)}`);
  }
  return changes;
}

/** Key by key (env): an added or removed variable is named; a changed one shows both values. */
function mapChanges(field: string, a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.flatMap((k) => {
    if (!(k in a)) return [`${field}.${k} added`];
    if (!(k in b)) return [`${field}.${k} removed`];
    return canonical(a[k]) === canonical(b[k]) ? [] : [`${field}.${k} ${show(a[k])} → ${show(b[k])}`];
  });
}

const isStringMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Every field either spec sets, in a stable order (service and name identify it: not compared). */
function componentFields(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  keys.delete('service');
  keys.delete('name');
  return [...keys].sort();
}

/** JSON with object keys sorted: `env` key order is not a change; array order is. */
function canonical(v: unknown): string {
  if (v === undefined) return 'undefined';
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))) : x,
  );
}

/** Short and unambiguous: numbers and booleans bare, strings quoted only when empty, the rest JSON. */
function show(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return v === '' ? '""' : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = canonical(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
