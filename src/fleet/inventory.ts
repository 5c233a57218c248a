/**
 * The fleet inventory: which nodes the master knows, how to reach each over SSH, and the labels
 * services select them by. Read with the manifest loaders (TOML, YAML or JSON by extension) and
 * validated strictly: an unknown key or a bad value is a ValidationError naming the file and field,
 * before any node is contacted. Keys and known_hosts files are only read here, never written.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ValidationError, type FieldIssue } from '../errors.js';
import { formatOf, issuesOf, parseText } from '../manifest/load.js';
import { NAME_PATTERN } from '../manifest/schema.js';
import { hostKeysFromKnownHosts, isKeyLine } from './host-keys.js';

const nodeName = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(NAME_PATTERN, `must match ${NAME_PATTERN.source} (lowercase letters, digits and '-')`);

const labelKey = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** The fields a node may set, and `[defaults]` may set for every node. */
const sharedFields = {
  port: z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be between 1 and 65535').max(65535, 'must be between 1 and 65535'),
  user: z.string({ error: 'must be a string' }).min(1, 'must not be empty').regex(/^[A-Za-z0-9._-]+$/, 'must be a user name (letters, digits, . _ -)'),
  key: z.string({ error: 'must be a string' }).min(1, 'must not be empty'),
  host_key: z.string({ error: 'must be a string' }).min(1, 'must not be empty'),
  agent: z
    .array(z.string({ error: 'must be a string' }).min(1, 'words must not be empty').refine((s) => !s.includes('\0'), 'must not contain NUL'), {
      error: 'must be an array of words, e.g. ["agent", "--db", "/var/lib/agent/agent.db"]',
    })
    .min(1, 'must have at least one word'),
  labels: z.record(
    z.string().regex(labelKey, `keys must match ${labelKey.source}`),
    z.string({ error: 'values must be strings' }),
    { error: 'must be a table of strings' },
  ),
};

/** What `[defaults]` and each node may set; a node's own value wins. */
const DefaultsSchema = z.strictObject(sharedFields).partial();

const NodeSchema = DefaultsSchema.extend({
  name: nodeName,
  host: z.string({ error: 'must be a string' }).min(1, 'must not be empty').regex(/^[A-Za-z0-9._:-]+$/, 'must be a host name or an IP address'),
});

export const InventorySchema = z.strictObject({
  defaults: DefaultsSchema.default({}),
  nodes: z.array(NodeSchema, { error: 'must be an array of [[nodes]]' }).min(1, 'must list at least one node'),
});

/**
 * With `--nats` the master reaches no node itself: only names and labels matter. The same file
 * is accepted (the SSH fields stay allowed and are checked, so one inventory serves both paths),
 * but `host` and `key` are optional and no key or known_hosts file is read.
 */
const NatsInventorySchema = z.strictObject({
  defaults: DefaultsSchema.default({}),
  nodes: z.array(NodeSchema.extend({ host: NodeSchema.shape.host.optional() }), { error: 'must be an array of [[nodes]]' }).min(1, 'must list at least one node'),
});

/** What placement and selection need of a node. */
export interface InventoryNode {
  name: string;
  labels: Record<string, string>;
}

/** One node, every default resolved and every file it names read. */
export interface FleetNode extends InventoryNode {
  name: string;
  host: string;
  port: number;
  user: string;
  /** The private key's path (absolute) and contents. */
  keyPath: string;
  privateKey: Buffer;
  /** The pinned host keys (OpenSSH public key lines); empty only when none is set (keyscan still works). */
  hostKeys: string[];
  /** The remote command that runs the agent, as words. */
  agent: string[];
  labels: Record<string, string>;
}

export interface Inventory {
  path: string;
  nodes: FleetNode[];
}

/** The file's document checked against `schema`; every problem at once, naming its field. */
function readInventory<S extends z.ZodType>(path: string, schema: S): z.output<S> {
  const format = formatOf(path);
  if (!format) throw new ValidationError(`inventory ${path}`, [{ field: '(file)', rule: 'must end in .toml, .yaml, .yml or .json' }]);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`inventory ${path}`, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  const doc = parseText(text, format, `inventory ${path}`);
  const parsed = schema.safeParse(doc);
  if (!parsed.success) throw new ValidationError(`inventory ${path}`, issuesOf(parsed.error, [], schema));
  return parsed.data;
}

/** `nodes[i].name: duplicates …` for each repeated name. */
function duplicateNames(nodes: Array<{ name: string }>): FieldIssue[] {
  const seen = new Map<string, number>();
  const issues: FieldIssue[] = [];
  nodes.forEach((n, i) => {
    const first = seen.get(n.name);
    if (first !== undefined) issues.push({ field: `nodes[${i}].name`, rule: `duplicates nodes[${first}].name '${n.name}': node names must be unique` });
    else seen.set(n.name, i);
  });
  return issues;
}

/** The inventory as `--nats` reads it: names and labels (see NatsInventorySchema). */
export function loadNatsInventory(path: string): { path: string; nodes: InventoryNode[] } {
  const { defaults, nodes } = readInventory(path, NatsInventorySchema);
  const issues = duplicateNames(nodes);
  if (issues.length > 0) throw new ValidationError(`inventory ${path}`, issues);
  return { path, nodes: nodes.map((n) => ({ name: n.name, labels: { ...defaults.labels, ...n.labels } })) };
}

/** Reads and validates an inventory; every problem is reported at once, naming its field. */
export function loadInventory(path: string): Inventory {
  const { defaults, nodes } = readInventory(path, InventorySchema);
  const base = dirname(resolve(path));
  const issues: FieldIssue[] = [];
  const seen = new Map<string, number>();
  const out: FleetNode[] = [];
  nodes.forEach((n, i) => {
    const at = (f: string): string => `nodes[${i}].${f}`;
    const first = seen.get(n.name);
    if (first !== undefined) return void issues.push({ field: at('name'), rule: `duplicates nodes[${first}].name '${n.name}': node names must be unique` });
    seen.set(n.name, i);
    const keyField = n.key !== undefined ? at('key') : 'defaults.key';
    const key = n.key ?? defaults.key;
    if (key === undefined) return void issues.push({ field: at('key'), rule: 'is required (the private key the master logs in with), here or in [defaults]' });
    const keyPath = resolve(base, key);
    let privateKey: Buffer;
    try {
      privateKey = readFileSync(keyPath);
    } catch (err) {
      return void issues.push({ field: keyField, rule: `cannot be read: ${(err as Error).message}` });
    }
    const port = n.port ?? defaults.port ?? 22;
    const hostKeyField = n.host_key !== undefined ? at('host_key') : 'defaults.host_key';
    const hostKey = n.host_key ?? defaults.host_key;
    let hostKeys: string[] = [];
    if (hostKey !== undefined) {
      if (isKeyLine(hostKey)) hostKeys = [hostKey.trim()];
      else {
        const file = resolve(base, hostKey);
        let known: string;
        try {
          known = readFileSync(file, 'utf8');
        } catch (err) {
          return void issues.push({ field: hostKeyField, rule: `is neither a public key line ('ssh-ed25519 AAAA...') nor a readable known_hosts file: ${(err as Error).message}` });
        }
        hostKeys = hostKeysFromKnownHosts(known, n.host, port);
        if (hostKeys.length === 0) return void issues.push({ field: hostKeyField, rule: `known_hosts file ${file} has no key for ${port === 22 ? n.host : `[${n.host}]:${port}`} (agent fleet keyscan ${n.name} prints it)` });
      }
    }
    out.push({
      name: n.name,
      host: n.host,
      port,
      user: n.user ?? defaults.user ?? 'root',
      keyPath,
      privateKey,
      hostKeys,
      agent: n.agent ?? defaults.agent ?? ['agent'],
      labels: { ...defaults.labels, ...n.labels },
    });
  });
  if (issues.length > 0) throw new ValidationError(`inventory ${path}`, issues);
  return { path, nodes: out };
}

/** Every node must have a pinned host key before anything is sent to it (no trust on first use). */
export function requirePinned(inv: Inventory, nodes: FleetNode[]): void {
  const issues = nodes
    .filter((n) => n.hostKeys.length === 0)
    .map((n) => ({ field: `nodes[${inv.nodes.indexOf(n)}].host_key`, rule: `is required for node ${n.name} (no trust on first use: run agent fleet keyscan ${n.name}, check the key, paste it)` }));
  if (issues.length > 0) throw new ValidationError(`inventory ${inv.path}`, issues);
}

/** The nodes `--nodes a,b` or `--selector k=v[,k=v]` pick (all without either); unknown names are errors. */
export function selectNodes<N extends InventoryNode>(inv: { nodes: N[] }, opts: { nodes?: string; selector?: string }): N[] {
  if (opts.nodes !== undefined && opts.selector !== undefined) {
    throw new ValidationError('fleet', [{ field: '--nodes', rule: 'cannot be used with --selector: pick nodes by name or by labels' }]);
  }
  if (opts.nodes !== undefined) {
    const names = opts.nodes.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !inv.nodes.some((x) => x.name === n));
    if (unknown.length > 0 || names.length === 0) {
      throw new ValidationError('fleet', [{ field: '--nodes', rule: unknown.length ? `names unknown node(s) ${unknown.join(', ')} (the inventory has ${inv.nodes.map((n) => n.name).join(', ')})` : 'must name at least one node' }]);
    }
    return inv.nodes.filter((n) => names.includes(n.name));
  }
  if (opts.selector !== undefined) {
    const want = parseSelector(opts.selector);
    return inv.nodes.filter((n) => matchesLabels(n.labels, want));
  }
  return inv.nodes;
}

/** `role=edge,region=eu` as a label map. */
export function parseSelector(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)=(.*)$/.exec(part);
    if (!m) throw new ValidationError('fleet', [{ field: '--selector', rule: `must be key=value[,key=value], got '${part}'` }]);
    out[m[1]!] = m[2]!;
  }
  if (Object.keys(out).length === 0) throw new ValidationError('fleet', [{ field: '--selector', rule: 'must have at least one key=value' }]);
  return out;
}

/** A selector matches when every one of its labels is on the node with the same value. */
export function matchesLabels(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
