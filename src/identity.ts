/**
 * How a component is named and recognised in the outside world. Pure functions.
 * - workload name: `service-component`, valid for podman names, QEMU -name and file names.
 * - labels: which agent owns a workload, which component it is, which spec it was started from.
 * - spec hash: sha256 over the canonical JSON of the fields that shape the running workload.
 * A leaf of the import graph (it imports only types): runtime/, net/ and agent/ may all use it.
 */
import { createHash } from 'node:crypto';
import type { ComponentKey } from './errors.js';
import type { ComponentSpec } from './manifest/schema.js';

export const LABEL_AGENT = 'io.mcp-agent.agent';
export const LABEL_COMPONENT = 'io.mcp-agent.component';
export const LABEL_SPEC_HASH = 'io.mcp-agent.spec-hash';

export function workloadName(key: ComponentKey): string {
  return `${key.service}-${key.component}`;
}

/** `svc/comp` as stored in labels. Returns undefined for anything that is not such a pair. */
export function parseComponentLabel(value: string | undefined): ComponentKey | undefined {
  if (!value) return undefined;
  const m = /^([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9-]*)$/.exec(value);
  return m ? { service: m[1]!, component: m[2]! } : undefined;
}

/**
 * Plain code-unit order, for sorting names (ASCII by their rules). Not localeCompare: its first call
 * in a process loads ICU's collator (~10 ms of a CLI call), and its order changes with the locale.
 */
export const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** JSON with object keys sorted at every level, so equal specs always serialise equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => byCodeUnits(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The fields whose change means the workload must be replaced. Left out: the restart policy (it
 * changes what the agent does next, not what runs), and for VMs the expected image hash and the
 * pinned SSH host key (checks on the workload, not its shape). `agent status` names these fields
 * when a spec changed.
 */
export const SHAPING_FIELDS = ['runtime', 'image', 'kernel', 'initrd', 'cmdline', 'cmd', 'env', 'memory', 'vcpus', 'network', 'ports', 'volumes'] as const satisfies ReadonlyArray<keyof ComponentSpec>;

/**
 * sha256 over the canonical JSON of the SHAPING_FIELDS. Undefined fields drop out of the JSON, so
 * adding an optional field keeps every existing hash.
 */
export function specHash(spec: ComponentSpec): string {
  return memo(specHashes, spec, () => {
    const shaping = Object.fromEntries(SHAPING_FIELDS.map((f) => [f, spec[f]]));
    return createHash('sha256').update(canonicalJson(shaping)).digest('hex');
  });
}

/**
 * Hashes by spec object. Specs are values: nothing mutates one after it is parsed, and the
 * registry hands out the same object for a row that did not change (desired.ts), so a pass or a
 * status request over hundreds of components hashes only what changed.
 */
const specHashes = new WeakMap<ComponentSpec, string>();
const attemptHashes = new WeakMap<ComponentSpec, string>();
function memo(cache: WeakMap<ComponentSpec, string>, spec: ComponentSpec, compute: () => string): string {
  let h = cache.get(spec);
  if (h === undefined) cache.set(spec, (h = compute()));
  return h;
}

/**
 * The hash the backoff is keyed on: every field of the spec, including those left out of
 * specHash. A failed start is held back only while the operator has changed nothing, so a fix
 * to any field (a corrected image_sha256, a pinned host key, the restart policy) is tried at once.
 */
export function attemptHash(spec: ComponentSpec): string {
  return memo(attemptHashes, spec, () => createHash('sha256').update(canonicalJson(spec)).digest('hex'));
}

export function labelsFor(agentId: string, key: ComponentKey, hash: string): Record<string, string> {
  return {
    [LABEL_AGENT]: agentId,
    [LABEL_COMPONENT]: `${key.service}/${key.component}`,
    [LABEL_SPEC_HASH]: hash,
  };
}

/** A deterministic, locally administered MAC for a VM: `52:54:00:` + 3 bytes of sha256(name). */
export function macFor(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return ['52', '54', '00', ...[0, 1, 2].map((i) => h[i]!.toString(16).padStart(2, '0'))].join(':');
}
