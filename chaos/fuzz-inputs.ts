/**
 * Generators for the fuzz scenario (fast-check, seeded): manifests generated field by field
 * (known and unknown fields, odd unicode, huge and negative numbers, deep nesting) in TOML, YAML
 * and JSON; valid manifests mutated character by character; nesting bombs; and registry rows
 * that each break one rule `apply` enforces, as a master with sqlite3 could write them.
 */
import fc from 'fast-check';
import { stringify as toToml } from 'smol-toml';
import { stringify as toYaml } from 'yaml';
import { IMAGE } from '../test/helpers/agent.js';
import type { ManifestFormat } from '../src/manifest/load.js';

export interface ManifestInput {
  format: ManifestFormat;
  text: string;
  how: string;
}

const FIELDS = ['name', 'runtime', 'image', 'cmd', 'env', 'memory', 'vcpus', 'network', 'ports', 'volumes', 'restart', 'kernel', 'initrd', 'cmdline', 'image_sha256', 'ssh_host_key', 'comand', 'mem', 'foo'];
const ODD = ['\u0000', '\u202e', '\ud83d\ude00', '\u0301', '\ufeff', 'é', '\u2028', '𝔘', '../', '/etc/passwd', '"', "'''", '\\', '${HOME}', ' ', '\t'];

const oddString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(...ODD, 'web', 'a-b', 'x_y', 'A', 'container', 'unikernel', 'slirp', 'always', IMAGE, 'x'.repeat(5000)),
);
const oddNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 16, 80, 65536, 2 ** 31, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, oddString, oddNumber, fc.boolean(), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(oddString, tie('v'), { maxKeys: 4 })),
})).v;

const component = fc.dictionary(fc.constantFrom(...FIELDS), value, { minKeys: 0, maxKeys: 8 });
const manifestDoc = fc.record(
  {
    name: fc.oneof(oddString, fc.constantFrom('svc', 'fz-a')),
    runtime: fc.oneof(fc.constantFrom('container', 'unikernel'), oddString),
    active: fc.oneof(fc.boolean(), value),
    components: fc.oneof(fc.array(component, { maxLength: 4 }), value),
    extra: value,
  },
  { requiredKeys: ['name', 'components'] },
);

function serialize(doc: unknown, format: ManifestFormat): string {
  if (format === 'yaml') return toYaml(doc);
  if (format === 'toml') {
    try {
      return toToml(doc as Record<string, unknown>);
    } catch {
      return JSON.stringify(doc);
    }
  }
  return JSON.stringify(doc);
}

const VALID: Array<{ format: ManifestFormat; text: string }> = [
  { format: 'toml', text: `name = "fz"\nruntime = "container"\n\n[[components]]\nname = "a"\nimage = "${IMAGE}"\ncmd = ["sleep", "100"]\nmemory = 64\nenv = { A = "1" }\n` },
  { format: 'yaml', text: `name: fz\nruntime: container\ncomponents:\n  - name: a\n    image: ${IMAGE}\n    cmd: [sleep, "100"]\n    vcpus: 1\n` },
  { format: 'json', text: JSON.stringify({ name: 'fz', components: [{ name: 'k', runtime: 'unikernel', kernel: 'vmlinux', memory: 128, network: 'slirp' }] }) },
];

const mutation = fc.record({ at: fc.nat(), op: fc.constantFrom('insert', 'delete', 'duplicate', 'number'), what: oddString, len: fc.integer({ min: 1, max: 12 }) });

function mutate(text: string, muts: Array<{ at: number; op: string; what: string; len: number }>): string {
  let t = text;
  for (const m of muts) {
    const i = m.at % (t.length + 1);
    if (m.op === 'insert') t = t.slice(0, i) + m.what + t.slice(i);
    else if (m.op === 'delete') t = t.slice(0, i) + t.slice(i + m.len);
    else if (m.op === 'duplicate') t = t.slice(0, i) + t.slice(i, i + m.len * 4) + t.slice(i);
    else t = t.replace(/\d+/, String(['1e999', '18446744073709551616', '-0', '0x10', 'NaN', 'inf', '1_000'][m.len % 7]));
  }
  return t;
}

export const manifestInput: fc.Arbitrary<ManifestInput> = fc.oneof(
  fc.tuple(manifestDoc, fc.constantFrom<ManifestFormat>('toml', 'yaml', 'json')).map(([doc, format]) => ({ format, text: serialize(doc, format), how: 'generated' })),
  fc.tuple(fc.constantFrom(...VALID), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([v, muts]) => ({ format: v.format, text: mutate(v.text, muts), how: 'mutated' })),
);

/** Nesting bombs: the parsers must refuse them as invalid input, not blow the stack. */
export function nestingBombs(): ManifestInput[] {
  const out: ManifestInput[] = [];
  for (const depth of [1_000, 10_000, 100_000]) {
    out.push({ format: 'json', text: `{"name":"b","components":${'['.repeat(depth)}${']'.repeat(depth)}}`, how: `json bomb ${depth}` });
    out.push({ format: 'yaml', text: `name: b\ncomponents: ${'['.repeat(depth)}${']'.repeat(depth)}\n`, how: `yaml bomb ${depth}` });
    out.push({ format: 'toml', text: `name = "b"\ncomponents = ${'['.repeat(depth)}${']'.repeat(depth)}\n`, how: `toml bomb ${depth}` });
  }
  return out;
}

export interface BadRow {
  /** What rule the row breaks; the agent must show it `invalid`. */
  breaks: string;
  columns: Record<string, string | number | null>;
}

const CONTAINER_ROW = { runtime: 'container', image: IMAGE, cmd: '["sleep","100"]', env: '{}', network: 'none', ports: '[]', volumes: '[]' };
const VM_ROW = { runtime: 'unikernel', image: '', kernel: 'vmlinux', initrd: 'initrd.gz', memory_mib: 128, network: 'slirp' };

/** Rows that each break one rule of the manifest schema (SQLite's CHECKs let them in). */
export const BAD_ROWS: BadRow[] = [
  { breaks: 'env value not a string', columns: { ...CONTAINER_ROW, env: '{"A":1}' } },
  { breaks: 'env key with a space', columns: { ...CONTAINER_ROW, env: '{"bad key":"x"}' } },
  { breaks: 'cmd not strings', columns: { ...CONTAINER_ROW, cmd: '[1,{"a":2}]' } },
  { breaks: 'cmd with NUL', columns: { ...CONTAINER_ROW, cmd: '["a\\u0000b"]' } },
  { breaks: 'memory negative', columns: { ...CONTAINER_ROW, memory_mib: -5 } },
  { breaks: 'memory 2^62 MiB', columns: { ...CONTAINER_ROW, memory_mib: 2 ** 62 } },
  { breaks: 'vcpus 0', columns: { ...CONTAINER_ROW, vcpus: 0 } },
  { breaks: 'container on a bridge', columns: { ...CONTAINER_ROW, network: 'bridge' } },
  { breaks: 'container with ports', columns: { ...CONTAINER_ROW, ports: '[{"guest":80}]' } },
  { breaks: 'port out of range', columns: { ...VM_ROW, ports: '[{"guest":70000}]' } },
  { breaks: 'volume relative source', columns: { ...CONTAINER_ROW, volumes: '[{"source":"etc","target":"/x"}]' } },
  { breaks: 'volume with ..', columns: { ...CONTAINER_ROW, volumes: '[{"source":"/srv/../etc","target":"/x"}]' } },
  { breaks: 'volume unknown key', columns: { ...CONTAINER_ROW, volumes: '[{"source":"/srv","target":"/x","rw":1}]' } },
  { breaks: 'empty container image', columns: { ...CONTAINER_ROW, image: '' } },
  { breaks: 'unikernel without memory', columns: { ...VM_ROW, memory_mib: null } },
  { breaks: 'kernel /etc/passwd', columns: { ...VM_ROW, kernel: '/etc/passwd' } },
  { breaks: 'kernel ../ escape', columns: { ...VM_ROW, kernel: '../../../etc/shadow' } },
  { breaks: 'initrd /etc/passwd', columns: { ...VM_ROW, initrd: '/etc/passwd' } },
  { breaks: 'disk image /etc/passwd', columns: { ...VM_ROW, kernel: null, initrd: null, image: '/etc/passwd' } },
  { breaks: 'ssh_host_key /etc/passwd', columns: { ...VM_ROW, ssh_host_key: '/etc/passwd' } },
  { breaks: 'cmdline with a newline', columns: { ...VM_ROW, cmdline: 'a\nb' } },
  { breaks: 'image_sha256 not hex', columns: { ...VM_ROW, image_sha256: 'zz' } },
];

/** Random JSON in the JSON columns of an otherwise valid row: never a crash, whatever it says. */
export const randomRow: fc.Arbitrary<Record<string, string | number | null>> = fc.record({
  cmd: fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify([v])), fc.constant('[]')),
  env: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }).map((v) => JSON.stringify(v)),
  ports: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 2 }).map((v) => JSON.stringify(v)),
  volumes: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 2 }).map((v) => JSON.stringify(v)),
  memory_mib: fc.oneof(fc.constant(null), fc.integer(), fc.constantFrom(2 ** 53, -(2 ** 40))),
  vcpus: fc.oneof(fc.constant(null), fc.integer({ min: -5, max: 1000 })),
  runtime: fc.constantFrom('container', 'unikernel'),
  image: fc.oneof(fc.constant(IMAGE), fc.string({ maxLength: 30 }), fc.constant('/etc/passwd')),
  kernel: fc.oneof(fc.constant(null), fc.constantFrom('vmlinux', '/etc/passwd', '../x', '/proc/self/mem')),
});
