/**
 * The master's connection to the fleet's NATS JetStream KV bucket: connect with a bound, open
 * (or create) the bucket, and read a key range as it is now. Every failure to reach the servers
 * becomes one NatsUnreachableError naming the URLs (exit 1, like a node the SSH path cannot
 * reach): with NATS down the master can do nothing for any node, so it stops before planning.
 */
import { connect, type KV, type NatsConnection } from 'nats';
import { AgentError, ValidationError } from '../errors.js';
import { bucketMissing, connectionOptions, natsReason as reason } from '../nats/connection.js';
import { authFileIssues, BUCKET_NAME, BUCKET_RULE, NATS_URL, NATS_URL_RULE } from '../nats/keys.js';
import type { StoredEntry } from './nats-plan.js';

export class NatsUnreachableError extends AgentError {}

/** `--nats a:4222,nats://b:4222` as a list of server URLs; bad ones are a ValidationError. */
export function parseNatsUrls(text: string): string[] {
  const urls = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = urls.filter((u) => !NATS_URL.test(u));
  if (urls.length === 0 || bad.length > 0) throw new ValidationError('fleet', [{ field: '--nats', rule: `${NATS_URL_RULE}, comma-separated${bad.length ? `, got '${bad.join("', '")}'` : ''}` }]);
  return urls;
}

/** A bucket name NATS accepts (the same rule as the agent's source.nats.bucket). */
export function checkBucket(name: string): string {
  if (!BUCKET_NAME.test(name)) throw new ValidationError('fleet', [{ field: '--bucket', rule: `${BUCKET_RULE}, got '${name}'` }]);
  return name;
}

/** TLS files of a master's `--nats-ca/--nats-cert/--nats-key` (the agent's source.nats.tls). */
export interface MasterTls {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/**
 * The TLS flags checked before any connection: each file readable, cert and key together. Returns
 * undefined when none is given (a plain connection).
 */
export function checkTls(t: MasterTls): MasterTls | undefined {
  const issues = authFileIssues({
    ca: { field: '--nats-ca', path: t.ca },
    cert: { field: '--nats-cert', path: t.cert },
    key: { field: '--nats-key', path: t.key },
    pair: { field: '--nats-cert', rule: 'and --nats-key go together: give both or neither' },
  });
  if (issues.length > 0) throw new ValidationError('fleet', issues);
  return t.ca === undefined && t.cert === undefined ? undefined : t;
}

/** Connects within `timeoutMs`, no reconnects (a master run is short); throws NatsUnreachableError. */
export async function connectNats(urls: string[], timeoutMs: number, tls?: MasterTls): Promise<NatsConnection> {
  try {
    return await connect(connectionOptions({ urls, name: 'mcp-agent fleet master', tls }, { timeoutMs }));
  } catch (err) {
    throw new NatsUnreachableError(`cannot reach NATS at ${urls.join(', ')}: ${reason(err)} (check --nats, the TLS flags, and that nats-server runs there with JetStream, -js)`);
  }
}

/** The bucket, or undefined when it does not exist and `create` is not given. */
export async function openBucket(nc: NatsConnection, bucket: string, opts: { timeoutMs: number; create?: { replicas: number; history: number } }): Promise<KV | undefined> {
  const where = `bucket ${bucket} on ${nc.getServer()}`;
  let exists: boolean;
  try {
    const jsm = await nc.jetstreamManager({ timeout: opts.timeoutMs });
    exists = await jsm.streams.info(`KV_${bucket}`).then(
      () => true,
      (err: unknown) => {
        if (bucketMissing(err)) return false;
        throw err;
      },
    );
  } catch (err) {
    throw new NatsUnreachableError(`cannot open ${where}: ${reason(err)} (is JetStream enabled? nats-server needs -js)`);
  }
  if (!exists && !opts.create) return undefined;
  const js = nc.jetstream({ timeout: opts.timeoutMs });
  try {
    if (exists) return await js.views.kv(bucket, { bindOnly: true, timeout: opts.timeoutMs });
    return await js.views.kv(bucket, { history: opts.create!.history, replicas: opts.create!.replicas, timeout: opts.timeoutMs });
  } catch (err) {
    throw new NatsUnreachableError(`cannot ${exists ? 'open' : 'create'} ${where}: ${reason(err)}`);
  }
}

/**
 * Every live key under `filter` (e.g. `desired.>`) with its value and revision, as the bucket
 * holds them now: one ordered consumer delivering the last value per key, stopped once it has
 * delivered what was there. Deleted and purged keys are left out.
 */
export async function readKeys(kv: KV, filter: string, timeoutMs: number): Promise<Map<string, StoredEntry>> {
  const out = new Map<string, StoredEntry>();
  let initialized = false;
  let iter: Awaited<ReturnType<KV['watch']>> | undefined;
  // Runs in order, right after the last entry that was there when the watch began (or during
  // watch() itself when there was none): stopping then ends the loop below.
  const done = (): void => {
    initialized = true;
    iter?.stop();
  };
  try {
    iter = await kv.watch({ key: filter, initializedFn: done });
  } catch (err) {
    throw new NatsUnreachableError(`cannot read ${filter} from the bucket: ${reason(err)}`);
  }
  if (initialized) {
    iter.stop();
    return out;
  }
  const it = iter;
  const timer = setTimeout(() => it.stop(new Error(`reading ${filter} took longer than ${timeoutMs} ms`)), timeoutMs);
  try {
    for await (const e of it) {
      if (e.operation === 'DEL' || e.operation === 'PURGE') out.delete(e.key);
      else out.set(e.key, { revision: e.revision, value: e.string() });
    }
  } catch (err) {
    throw new NatsUnreachableError(`cannot read ${filter} from the bucket: ${reason(err)}`);
  } finally {
    clearTimeout(timer);
    it.stop();
  }
  return out;
}
