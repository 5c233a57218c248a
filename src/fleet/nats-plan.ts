/**
 * What `fleet apply --nats` does to each node's keys: the pure diff between the services placement
 * gives a node and the `desired.<node>.<service>` keys the bucket holds (with their revisions).
 * Each write carries the revision it was planned against, so a key changed by another master in
 * between is refused by the server instead of silently overwritten. Invariant: a key whose stored
 * value already equals the wanted manifest is `unchanged` and never rewritten.
 */
import { toServiceSpec } from '../manifest/load.js';
import { diffDesired, type CurrentService } from '../manifest/diff.js';
import { desiredKey } from '../nats/keys.js';
import { byCodeUnits } from '../identity.js';

/** A live key of the bucket (deleted and purged keys are absent). */
export interface StoredEntry {
  revision: number;
  value: string;
}

export type KeyOp =
  | { op: 'create'; key: string; service: string; value: string }
  | { op: 'update'; key: string; service: string; value: string; revision: number; changes: string[] }
  | { op: 'delete'; key: string; service: string; revision: number }
  | { op: 'unchanged'; key: string; service: string; revision: number };

export interface NodeKeyPlan {
  node: string;
  ops: KeyOp[];
  /** Set when the node's set is empty but keys would go and --allow-empty was not given: nothing is written. */
  refused?: string;
}

/** A manifest as the value of its key: JSON with sorted object keys, so equal manifests store equal bytes. */
export function manifestValue(manifest: unknown): string {
  return JSON.stringify(sortKeys(manifest));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

/** The stored value read back for comparison; undefined when it is not JSON. */
function canonicalStored(value: string): string | undefined {
  try {
    return manifestValue(JSON.parse(value));
  } catch {
    return undefined;
  }
}

/** For a person, what differs between the stored manifest and the wanted one (`components[c].image a → b`). */
function changesOf(stored: string, wanted: Record<string, unknown>, service: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stored);
  } catch {
    return ['value (the stored one is not JSON)'];
  }
  try {
    const had = toServiceSpec(doc, 'stored');
    const want = toServiceSpec(wanted, service);
    const current: CurrentService = { name: had.name, active: had.active, comment: had.comment, origin: 'master', components: had.components.map((c) => ({ name: c.name, spec: c })) };
    const d = diffDesired([current], [want], { origin: 'master', prune: 'none' });
    const changes = d.updated[0]?.changes ?? [];
    // Same spec, other text (a default written out, a field the spec does not keep): still rewritten.
    return changes.length > 0 ? changes : ['manifest text'];
  } catch {
    return ['value (the stored one is not a valid manifest)'];
  }
}

/**
 * One node's key operations. `wanted` is the node's whole set (placement fields stripped);
 * `current` maps service name to its live key. Services keep the order given; deletes follow.
 */
export function planNodeKeys(
  node: string,
  wanted: Array<{ name: string; manifest: Record<string, unknown> }>,
  current: ReadonlyMap<string, StoredEntry>,
  opts: { allowEmpty: boolean },
): NodeKeyPlan {
  const ops: KeyOp[] = [];
  const names = new Set(wanted.map((w) => w.name));
  for (const w of wanted) {
    const key = desiredKey(node, w.name);
    const value = manifestValue(w.manifest);
    const have = current.get(w.name);
    if (!have) ops.push({ op: 'create', key, service: w.name, value });
    else if (have.value === value || canonicalStored(have.value) === value) ops.push({ op: 'unchanged', key, service: w.name, revision: have.revision });
    else ops.push({ op: 'update', key, service: w.name, value, revision: have.revision, changes: changesOf(have.value, w.manifest, w.name) });
  }
  const gone = [...current.entries()].filter(([name]) => !names.has(name)).sort(([a], [b]) => byCodeUnits(a, b));
  for (const [service, e] of gone) ops.push({ op: 'delete', key: desiredKey(node, service), service, revision: e.revision });
  if (wanted.length === 0 && gone.length > 0 && !opts.allowEmpty) {
    return { node, ops: [], refused: `its set is empty: pass --allow-empty to delete every key the master gave it (${gone.map(([s]) => desiredKey(node, s)).join(', ')})` };
  }
  return { node, ops };
}

/** `desired.<node>.<service>` keys read from the bucket, grouped by node then service. */
export function groupByNode(entries: ReadonlyMap<string, StoredEntry>, parse: (key: string) => { node: string; service: string } | undefined): Map<string, Map<string, StoredEntry>> {
  const out = new Map<string, Map<string, StoredEntry>>();
  for (const [key, e] of entries) {
    const p = parse(key);
    if (!p) continue;
    let m = out.get(p.node);
    if (!m) out.set(p.node, (m = new Map()));
    m.set(p.service, e);
  }
  return out;
}
