/**
 * Which node runs which service. A desired-state directory holds one service manifest per file,
 * each saying where it runs at its top level: `nodes = ["a", "b"]` (names) and/or
 * `selector = { role = "edge" }` (every label must match). With both, the service runs on the
 * union. The two keys are the master's: they are validated here and stripped, so a node receives
 * exactly the manifest `agent apply` accepts. Pure apart from reading the directory.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ValidationError, type FieldIssue } from '../errors.js';
import { formatOf, issuesOf, parseText, toServiceSpec } from '../manifest/load.js';
import type { ServiceSpec } from '../manifest/schema.js';
import { matchesLabels, type InventoryNode } from './inventory.js';

const PlacementSchema = z.strictObject({
  nodes: z.array(z.string({ error: 'must be a string' }).min(1, 'must not be empty'), { error: 'must be an array of node names' }).optional(),
  selector: z.record(z.string(), z.string({ error: 'values must be strings' }), { error: 'must be a table of labels, e.g. { role = "edge" }' }).optional(),
});
export type Placement = z.output<typeof PlacementSchema>;

/** A service of the desired state: what the node gets (`manifest`), its validated spec, and where it runs. */
export interface PlacedService {
  source: string;
  name: string;
  /** The manifest as written, without `nodes` and `selector`: what is sent to the node. */
  manifest: Record<string, unknown>;
  spec: ServiceSpec;
  placement: Placement;
}

/** Splits one parsed document into its placement and the node's manifest; validates both. */
export function splitManifest(doc: unknown, source: string): PlacedService {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ValidationError(source, [{ field: '(document)', rule: 'must be a table (one service)' }]);
  }
  const { nodes, selector, ...manifest } = doc as Record<string, unknown>;
  const placed = PlacementSchema.safeParse({ nodes, selector });
  const issues: FieldIssue[] = placed.success ? [] : issuesOf(placed.error, [], PlacementSchema);
  if (placed.success && placed.data.nodes === undefined && placed.data.selector === undefined) {
    issues.push({ field: 'nodes', rule: 'or selector is required: say where the service runs (nodes = ["a"] or selector = { role = "edge" })' });
  }
  let spec: ServiceSpec | undefined;
  try {
    spec = toServiceSpec(manifest, source);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  if (issues.length > 0 || !spec || !placed.success) throw new ValidationError(source, issues);
  return { source, name: spec.name, manifest, spec, placement: placed.data };
}

/** Every service of a desired-state directory (not recursive). All or nothing, like `apply --prune`. */
export function loadDesiredDir(dir: string): PlacedService[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => formatOf(n) !== undefined).sort();
  } catch (err) {
    throw new ValidationError(dir, [{ field: '(directory)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  const out: PlacedService[] = [];
  const issues: FieldIssue[] = [];
  const bySource = new Map<string, string>();
  for (const n of names) {
    const path = join(dir, n);
    try {
      if (!statSync(path).isFile()) continue;
      const s = splitManifest(parseText(readFileSync(path, 'utf8'), formatOf(path)!, path), path);
      const other = bySource.get(s.name);
      if (other) issues.push({ field: `${n}: name`, rule: `service '${s.name}' is already defined in ${basename(other)}` });
      else {
        bySource.set(s.name, path);
        out.push(s);
      }
    } catch (err) {
      if (err instanceof ValidationError) issues.push(...err.issues.map((i) => ({ field: `${n}: ${i.field}`, rule: i.rule })));
      else issues.push({ field: `${n}: (file)`, rule: `cannot be read: ${(err as Error).message}` });
    }
  }
  if (issues.length > 0) throw new ValidationError(`desired-state directory ${dir}`, issues);
  return out;
}

/**
 * Per node (every inventory node, in inventory order), the services it runs. A node name the
 * inventory does not have is an error; so is a service placed on no node, unless allowUnplaced.
 */
export function place(services: PlacedService[], nodes: InventoryNode[], opts: { allowUnplaced?: boolean } = {}): Map<string, PlacedService[]> {
  const perNode = new Map<string, PlacedService[]>(nodes.map((n) => [n.name, []]));
  const issues: FieldIssue[] = [];
  for (const s of services) {
    const where = new Set<string>();
    const file = basename(s.source);
    s.placement.nodes?.forEach((name, i) => {
      if (!perNode.has(name)) issues.push({ field: `${file}: nodes[${i}]`, rule: `names node '${name}', which is not in the inventory (${nodes.map((n) => n.name).join(', ')})` });
      else where.add(name);
    });
    const selector = s.placement.selector;
    if (selector) for (const n of nodes) if (matchesLabels(n.labels, selector)) where.add(n.name);
    if (where.size === 0 && !opts.allowUnplaced && !issues.some((i) => i.field.startsWith(`${file}: nodes[`))) {
      issues.push({ field: `${file}: ${selector ? 'selector' : 'nodes'}`, rule: `places service '${s.name}' on no node (pass --allow-unplaced if that is intended)` });
    }
    for (const n of nodes) if (where.has(n.name)) perNode.get(n.name)!.push(s);
  }
  if (issues.length > 0) throw new ValidationError('placement', issues);
  return perNode;
}
