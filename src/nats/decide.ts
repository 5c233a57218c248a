/**
 * The NATS source's decisions, pure: what one bucket entry does to the registry (apply, delete,
 * refuse, ignore), where a (re)started watch begins (resume after the stored revision, or re-list
 * the whole set), and what a re-list deletes. The adapter (source.ts) reads the bucket and the
 * registry, asks here, and writes exactly the answer.
 */
import { checkBootFiles } from '../agent/images.js';
import { checkHealthSsh } from '../agent/health/apply-check.js';
import { ValidationError } from '../errors.js';
import type { Origin } from '../manifest/diff.js';
import { loadManifestText } from '../manifest/load.js';
import type { ServiceSpec } from '../manifest/schema.js';
import { parseDesiredKey } from './keys.js';

/** A bucket entry as the source sees it (the client's KvEntry, narrowed). */
export interface SourceEntry {
  key: string;
  revision: number;
  operation: 'PUT' | 'DEL' | 'PURGE';
  value: Uint8Array;
}

export type EntryDecision =
  /** A valid manifest for a service that is absent or already the source's: create or update it. */
  | { kind: 'apply'; service: string; spec: ServiceSpec }
  /** The key was deleted or purged and the service is the source's: delete it. */
  | { kind: 'delete'; service: string }
  /** Nothing to do (a deletion of a service the source does not own; a key of another node). */
  | { kind: 'ignore'; service: string | null; why: string }
  /** A value that must change nothing: reported in status.<node> and the events log. */
  | { kind: 'refuse'; service: string | null; error: string };

export interface EntryContext {
  node: string;
  /** Who owns a service now; undefined when there is none of that name. */
  originOf: (service: string) => Origin | undefined;
  /** This node's allowed VM image directories (the boot-file rule `apply` checks). */
  imagesDirs: string[];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export function decideEntry(e: SourceEntry, ctx: EntryContext): EntryDecision {
  const parts = parseDesiredKey(e.key);
  if (!parts || parts.node !== ctx.node) return { kind: 'ignore', service: null, why: `key ${e.key} is not desired.${ctx.node}.<service>` };
  const { service } = parts;
  const owner = ctx.originOf(service);
  if (e.operation !== 'PUT') {
    if (owner === 'nats') return { kind: 'delete', service };
    if (owner === undefined) return { kind: 'ignore', service, why: `no service ${service} to delete` };
    return { kind: 'ignore', service, why: `service ${service} was applied by ${owner}: the source deletes only its own` };
  }
  let spec: ServiceSpec;
  try {
    const text = decoder.decode(e.value);
    spec = loadManifestText(text, 'json', `value of ${e.key}`);
    checkBootFiles([spec], ctx.imagesDirs);
    checkHealthSsh([spec], ctx.imagesDirs);
  } catch (err) {
    return { kind: 'refuse', service, error: oneLine(err) };
  }
  if (spec.name !== service) {
    return { kind: 'refuse', service, error: `name: must equal the key's service '${service}' (the manifest says '${spec.name}')` };
  }
  if (owner !== undefined && owner !== 'nats') {
    return { kind: 'refuse', service, error: `collision: service ${service} was applied by ${owner} on this node; the source never replaces it (delete it there first, or rename)` };
  }
  return { kind: 'apply', service, spec };
}

/** A refusal for status.<node>: the rules broken on one line, no stack. */
export function oneLine(err: unknown): string {
  if (err instanceof ValidationError) return `${err.source}: ${err.issues.map((i) => `${i.field}: ${i.rule}`).join('; ')}`;
  return err instanceof Error ? err.message : String(err);
}

/** The bucket's stream now, as JetStream tells it. */
export interface StreamNow {
  /** The stream's creation time: a bucket deleted and made again gets a new one. */
  created: string;
  firstSeq: number;
  lastSeq: number;
}

export type WatchStart =
  | { mode: 'resume'; from: number }
  | { mode: 'relist'; reason: string };

/**
 * Resume after the stored revision when it is of this very stream and nothing after it can have
 * been lost; otherwise re-list every key and reconcile. Lost: the stream no longer holds the
 * revision after ours (removed by a limit or a purge of delete markers, so a deletion may be
 * gone), or the stream is not the one the revision was of (recreated), or it is behind us.
 */
export function watchStart(stored: { stream_created: string; revision: number } | undefined, now: StreamNow): WatchStart {
  if (!stored) return { mode: 'relist', reason: 'no revision applied yet' };
  if (stored.stream_created !== now.created) return { mode: 'relist', reason: `the bucket was recreated (stream created ${now.created}, ours ${stored.stream_created})` };
  if (stored.revision > now.lastSeq) return { mode: 'relist', reason: `the bucket's last revision ${now.lastSeq} is behind ours (${stored.revision})` };
  // An empty stream reports first = last + 1: nothing after ours can be missing then.
  if (now.firstSeq > stored.revision + 1 && now.lastSeq >= now.firstSeq) {
    return { mode: 'relist', reason: `revision ${stored.revision + 1} is gone from the bucket (it starts at ${now.firstSeq})` };
  }
  return { mode: 'resume', from: stored.revision + 1 };
}

/** After a re-list: the source's services that no key names any more are deleted. */
export function relistDeletes(owned: string[], listed: Iterable<string>): string[] {
  const keep = new Set(listed);
  return owned.filter((s) => !keep.has(s)).sort();
}
