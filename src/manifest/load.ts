/**
 * Reads manifests (TOML, YAML or JSON, chosen by file extension) and turns them into validated,
 * normalised service specs. Pure apart from reading the files; nothing here touches the registry.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { createRequire } from 'node:module';

// YAML manifests are the exception (TOML is the norm): load the parser only for them.
const require = createRequire(import.meta.url);
import type { z } from 'zod';
import { ValidationError, type FieldIssue } from '../errors.js';
import { manifestSchemas, type ComponentSpec, type ServiceSpec } from './schema.js';
import { closest } from './suggest.js';

export type ManifestFormat = 'toml' | 'yaml' | 'json';

const EXTENSIONS: Record<string, ManifestFormat> = { '.toml': 'toml', '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json' };

export function formatOf(path: string): ManifestFormat | undefined {
  return EXTENSIONS[extname(path).toLowerCase()];
}

/** `components[1].env.FOO` from zod's path array. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(document)';
}

/** The parts of a zod schema's definition needed to find the keys an object at a path accepts. */
interface SchemaDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  getter?: () => z.ZodType;
  in?: z.ZodType;
}

/** The field names the object at `path` of `schema` accepts, or undefined when it cannot tell. */
export function knownKeysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] | undefined {
  const unwrap = (s: z.ZodType | undefined): SchemaDef | undefined => {
    for (let i = 0; s && i < 20; i++) {
      const def = (s as unknown as { _zod: { def: SchemaDef } })._zod.def;
      if (def.innerType) s = def.innerType; // optional, default, nullable, readonly, catch
      else if (def.getter) s = def.getter(); // lazy
      else if (def.type === 'pipe') s = def.in;
      else return def;
    }
    return undefined;
  };
  let def = unwrap(schema);
  for (const step of path) {
    def = unwrap(typeof step === 'number' ? def?.element : def?.shape?.[String(step)]);
  }
  return def?.shape ? Object.keys(def.shape) : undefined;
}

/**
 * Zod's issues as field + rule. With `schema` (the one that was parsed), an unknown key gets a
 * "did you mean" when one known field is close to it.
 */
export function issuesOf(error: z.ZodError, prefix: ReadonlyArray<PropertyKey> = [], schema?: z.ZodType): FieldIssue[] {
  return error.issues.flatMap((i) => {
    // Unknown keys are reported on the parent object: name each key itself, it is what was mistyped.
    if (i.code === 'unrecognized_keys') {
      const known = schema ? knownKeysAt(schema, i.path) : undefined;
      return i.keys.map((key) => {
        const near = known ? closest(key, known) : undefined;
        return { field: fieldPath([...prefix, ...i.path, key]), rule: `is not a known field${near ? ` (did you mean \`${near}\`?)` : ''}` };
      });
    }
    // A record key that breaks its rule: the key's own rule is the useful message, not the record's.
    if (i.code === 'invalid_key' && i.issues[0]) {
      return [{ field: fieldPath([...prefix, ...i.path]), rule: i.issues[0].message }];
    }
    return [{ field: fieldPath([...prefix, ...i.path]), rule: i.message }];
  });
}

/** `hint` is added to a syntax error: what the reader can change (e.g. the format it was read as). */
export function parseText(text: string, format: ManifestFormat, source: string, hint?: string): unknown {
  try {
    if (format === 'json') return JSON.parse(text);
    if (format === 'yaml') return (require('yaml') as typeof import('yaml')).parse(text, { prettyErrors: true });
    return parseToml(text);
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unreadable';
    throw new ValidationError(source, [{ field: '(document)', rule: `is not valid ${format.toUpperCase()}: ${msg}${hint ? ` (${hint})` : ''}` }]);
  }
}

/** Validates one parsed manifest document and resolves defaults into a ServiceSpec. */
export function toServiceSpec(doc: unknown, source: string): ServiceSpec {
  const { ServiceManifestSchema, ComponentSpecSchema } = manifestSchemas();
  const parsed = ServiceManifestSchema.safeParse(doc);
  if (!parsed.success) throw new ValidationError(source, issuesOf(parsed.error, [], ServiceManifestSchema));
  const m = parsed.data;
  const issues: FieldIssue[] = [];
  const seen = new Map<string, number>();
  const components: ComponentSpec[] = [];
  m.components.forEach((c, i) => {
    const first = seen.get(c.name);
    if (first !== undefined) {
      issues.push({ field: `components[${i}].name`, rule: `duplicates components[${first}].name '${c.name}': component names must be unique in a service` });
      return;
    }
    seen.set(c.name, i);
    const runtime = c.runtime ?? m.runtime;
    if (!runtime) {
      issues.push({ field: `components[${i}].runtime`, rule: 'is required when the service sets no runtime' });
      return;
    }
    const network = c.network ?? (runtime === 'container' ? 'none' : 'auto');
    const spec = ComponentSpecSchema.safeParse({ ...c, service: m.name, runtime, network });
    if (!spec.success) issues.push(...issuesOf(spec.error, ['components', i], ComponentSpecSchema));
    else components.push(spec.data);
  });
  if (issues.length > 0) throw new ValidationError(source, issues);
  return { name: m.name, active: m.active, comment: m.comment, components };
}

export function loadManifestText(text: string, format: ManifestFormat, source: string): ServiceSpec {
  return toServiceSpec(parseText(text, format, source), source);
}

/**
 * stdin has no extension to tell its format: TOML unless `--format` says otherwise. It holds one
 * service, or (a master's bundle, any format whose top level can be an array) an array of them:
 * all-or-nothing, each validated with its index in the field (`[1].components[0].memory`).
 */
export function loadManifestStdin(text: string, format: ManifestFormat | undefined): ServiceSpec[] {
  const source = 'manifest from stdin';
  const hint = format ? undefined : 'stdin is read as TOML: pass --format yaml|json for other formats';
  const doc = parseText(text, format ?? 'toml', source, hint);
  if (!Array.isArray(doc)) return [toServiceSpec(doc, source)];
  const issues: FieldIssue[] = [];
  const specs: ServiceSpec[] = [];
  const firstIndex = new Map<string, number>();
  doc.forEach((item, i) => {
    try {
      const spec = toServiceSpec(item, source);
      const first = firstIndex.get(spec.name);
      if (first !== undefined) issues.push({ field: `[${i}].name`, rule: `duplicates [${first}].name '${spec.name}': a bundle names each service once` });
      else firstIndex.set(spec.name, i);
      specs.push(spec);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      for (const issue of err.issues) issues.push({ field: issue.field === '(document)' ? `[${i}]` : `[${i}].${issue.field}`, rule: issue.rule });
    }
  });
  if (issues.length > 0) throw new ValidationError(source, issues);
  return specs;
}

export function loadManifestFile(path: string): ServiceSpec {
  const format = formatOf(path);
  if (!format) {
    throw new ValidationError(path, [{ field: '(file)', rule: 'must end in .toml, .yaml, .yml or .json' }]);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(path, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  return loadManifestText(text, format, path);
}

/**
 * Every manifest in a directory (not recursive), for `apply --prune`. All-or-nothing: any invalid
 * file, or two files defining the same service, fails the whole set.
 */
export function loadManifestDir(dir: string): ServiceSpec[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => formatOf(n) !== undefined).sort();
  } catch (err) {
    throw new ValidationError(dir, [{ field: '(directory)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  const specs: ServiceSpec[] = [];
  const bySource = new Map<string, string>();
  const problems: ValidationError[] = [];
  for (const n of names) {
    const path = join(dir, n);
    try {
      if (!statSync(path).isFile()) continue;
      const spec = loadManifestFile(path);
      const other = bySource.get(spec.name);
      if (other) {
        problems.push(new ValidationError(path, [{ field: 'name', rule: `service '${spec.name}' is already defined in ${basename(other)}` }]));
        continue;
      }
      bySource.set(spec.name, path);
      specs.push(spec);
    } catch (err) {
      if (err instanceof ValidationError) problems.push(err);
      else problems.push(new ValidationError(path, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]));
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    throw new ValidationError(
      `manifest directory ${dir}`,
      problems.flatMap((p) => p.issues.map((i) => ({ field: `${basename(p.source)}: ${i.field}`, rule: i.rule }))),
    );
  }
  return specs;
}
