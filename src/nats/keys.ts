/**
 * The shape of the fleet's JetStream KV bucket, shared by the agent (which watches its own keys)
 * and the master (which writes them): pure names and their rules, no connection.
 *
 *   desired.<node>.<service>  a service manifest as JSON (the schema `agent apply` takes)
 *   status.<node>             the node's compact status (NodeSummary), rewritten on change and as a heartbeat
 *
 * The same rules hold at both ends: a server URL and a bucket name are checked here for the
 * agent's settings (source.nats) and the master's --nats and --bucket alike.
 *
 * Dots separate tokens in a NATS subject, so neither a node nor a service name may hold one: a
 * hostname `web1.example.org` is node `web1`.
 */
import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';

export const DEFAULT_BUCKET = 'mcp-fleet';

/** A server URL: nats:// or tls:// (or none: nats://), an optional user@, a host, an optional port. */
export const NATS_URL = /^((nats|tls):\/\/)?([^\s/@]+@)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?\/?$/;
export const NATS_URL_RULE = 'must be nats://host:port, tls://host:port or host:port (nats://127.0.0.1:4222)';

/** A JetStream KV bucket name (its stream is KV_<bucket>). */
export const BUCKET_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const BUCKET_RULE = 'must be 1-64 letters, digits, - or _';

/** A node name: a single subject token. */
export const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const NODE_NAME_RULE = 'must be 1-64 letters, digits, - or _ (one NATS subject token: no dots)';

/** The default node name: the host name up to its first dot. */
export function defaultNodeName(host = hostname()): string {
  return host.split('.')[0] ?? host;
}

export const desiredKey = (node: string, service: string): string => `desired.${node}.${service}`;
export const statusKey = (node: string): string => `status.${node}`;
/** What a node's agent watches: every service of that node. */
export const desiredFilter = (node: string): string => `desired.${node}.>`;
/** What a master lists to see every node's status. */
export const STATUS_FILTER = 'status.>';

/** `desired.<node>.<service>` to its parts; undefined for any other key. */
export function parseDesiredKey(key: string): { node: string; service: string } | undefined {
  const m = /^desired\.([^.]+)\.([^.]+)$/.exec(key);
  return m ? { node: m[1]!, service: m[2]! } : undefined;
}

/** `status.<node>` to the node; undefined for any other key. */
export function parseStatusKey(key: string): string | undefined {
  return /^status\.([^.]+)$/.exec(key)?.[1];
}

/** A client's auth files, each named by the field or flag an operator set it with. */
export interface AuthFiles {
  creds?: { field: string; path: string | undefined };
  ca: { field: string; path: string | undefined };
  cert: { field: string; path: string | undefined };
  key: { field: string; path: string | undefined };
  /** Where a cert without its key (or the other way) is reported, and how it is said. */
  pair: { field: string; rule: string };
}

/**
 * One rule for the agent's source.nats files and the master's --nats-* flags: every file given is
 * readable, and a client cert goes with its key. Checked before any connection.
 */
export function authFileIssues(f: AuthFiles): Array<{ field: string; rule: string }> {
  const issues: Array<{ field: string; rule: string }> = [];
  for (const { field, path } of [f.creds, f.ca, f.cert, f.key].filter((x) => x !== undefined)) {
    if (path === undefined) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      issues.push({ field, rule: `must be a readable file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} for ${path}` });
    }
  }
  if ((f.cert.path === undefined) !== (f.key.path === undefined)) issues.push(f.pair);
  return issues;
}
