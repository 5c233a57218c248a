/**
 * How this project reaches NATS, for both ends: the agent's source (src/nats/source.ts), which
 * reconnects forever, and the master's `fleet … --nats` (src/fleet/nats-client.ts), which tries
 * once within a bound: one set of client options (credentials, TLS), one wording for why a server
 * could not be used. (The URL and bucket-name rules are in keys.ts: the settings check them
 * without loading the client.)
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from 'nats';

export interface ConnectTo {
  urls: string[];
  /** Shown by the server (`nats server report connections`): who this client is. */
  name: string;
  /** A credentials file (JWT and NKey seed). */
  creds?: string | undefined;
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
}

/**
 * The client options: `forever` (the agent) waits for a first server and reconnects without end,
 * with jitter so a fleet does not reconnect in lockstep after an outage; `{ timeoutMs }` (a master
 * run, short) tries once within that bound and never reconnects.
 */
export function connectionOptions(to: ConnectTo, mode: 'forever' | { timeoutMs: number }): ConnectionOptions {
  const auth: ConnectionOptions = {
    ...(to.creds ? { authenticator: credsAuthenticator(readFileSync(to.creds)) } : {}),
    ...(to.tls ? { tls: { caFile: to.tls.ca, certFile: to.tls.cert, keyFile: to.tls.key } } : {}),
  };
  if (mode === 'forever') {
    return { servers: to.urls, name: to.name, maxReconnectAttempts: -1, reconnectTimeWait: 1000, reconnectJitter: 500, reconnectJitterTLS: 1000, waitOnFirstConnect: true, ...auth };
  }
  return { servers: to.urls, name: to.name, timeout: mode.timeoutMs, reconnect: false, ...auth };
}

/** Why a NATS call failed, in a few words a person can act on (never a stack). */
export function natsReason(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code === 'CONNECTION_REFUSED') return 'connection refused';
  if (e?.code === 'TIMEOUT') return 'timed out';
  return (e?.message ?? String(err)).replace(/\s*\n\s*/g, ' ').trim();
}

/** Whether an error says the bucket (its stream KV_<bucket>) does not exist: a master has not created it yet. */
export function bucketMissing(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string } | undefined;
  if (e?.api_error?.err_code === 10059) return true; // JetStream: stream not found
  return /stream not found|bucket not found|no responders/i.test(e?.message ?? String(err));
}
