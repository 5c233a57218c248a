/**
 * The CLI's side of the local API: asks the running agent of this registry over its unix socket.
 * "No agent" is an answer, not an error: no socket, a refused or silent one, an answer that does
 * not fit (another version), or an agent of another registry in the same directory all give
 * undefined, and the caller computes live. Only `events --follow`, which needs the agent, fails.
 */
import { request, type IncomingMessage } from 'node:http';
import { existsSync, realpathSync } from 'node:fs';
import type { z } from 'zod';
import { AgentError } from '../errors.js';
import { BUILD_ID } from '../build-id.js';

/** How long a connection to the socket may take: a live agent accepts at once. */
const CONNECT_MS = 300;
/** How long a whole answer may take (the agent plans from memory: milliseconds, even for hundreds of rows). */
const ANSWER_MS = 5000;

export interface AgentTarget {
  socketPath: string;
  /** The registry this CLI call is about: an agent serving another one is not asked. */
  registryPath: string;
}

const sameFile = (a: string, b: string): boolean => {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
};

/** Opens a GET on the socket; resolves with the response, or undefined when no agent of this registry answers. */
function get(t: AgentTarget, path: string, answerMs: number | undefined): Promise<{ res: IncomingMessage; abort: () => void } | undefined> {
  // No socket, no agent: the common case of a CLI call answers without a connection attempt.
  if (!existsSync(t.socketPath)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: { res: IncomingMessage; abort: () => void } | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      resolve(v);
    };
    const req = request({ socketPath: t.socketPath, path, method: 'GET', timeout: answerMs, agent: false });
    const connectTimer = setTimeout(() => {
      req.destroy();
      done(undefined);
    }, CONNECT_MS);
    req.on('socket', (s) => s.once('connect', () => clearTimeout(connectTimer)));
    req.on('timeout', () => {
      req.destroy();
      done(undefined);
    });
    req.on('error', () => done(undefined));
    req.on('response', (res) => {
      const served = res.headers['x-agent-registry'];
      if (typeof served !== 'string' || !sameFile(served, t.registryPath)) {
        res.destroy();
        return done(undefined);
      }
      done({ res, abort: () => req.destroy() });
    });
    req.end();
  });
}

/**
 * A document from the agent; undefined when no agent of this registry gives one. Checked against
 * `schema` unless the agent is of this very build (src/build-id.ts): building the schemas and
 * checking hundreds of rows is a good part of a CLI call, and the same code made the document.
 */
export async function askAgent<T>(t: AgentTarget, path: string, schema: () => Promise<z.ZodType<T>>, build = BUILD_ID): Promise<T | undefined> {
  const r = await get(t, path, ANSWER_MS);
  if (!r || r.res.statusCode !== 200) {
    r?.res.resume();
    return undefined;
  }
  let text = '';
  try {
    for await (const chunk of r.res) text += String(chunk);
    const doc: unknown = JSON.parse(text);
    if (build !== undefined && r.res.headers['x-agent-build'] === build) return doc as T;
    const parsed = (await schema()).safeParse(doc);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Streams NDJSON lines from the agent until it ends the stream or `signal` aborts; each line
 * checked against `schema`. Throws an AgentError naming the socket when no agent answers.
 */
export async function followAgent<T>(t: AgentTarget, path: string, schema: z.ZodType<T>, onItem: (item: T) => void, signal: AbortSignal): Promise<void> {
  const r = await get(t, path, undefined);
  if (!r) throw new AgentError(`no running agent answers on ${t.socketPath}: --follow needs \`agent run\` on this registry (${t.registryPath})`);
  if (r.res.statusCode !== 200) {
    let text = '';
    for await (const chunk of r.res) text += String(chunk);
    throw new AgentError(`the agent refused to stream events (HTTP ${r.res.statusCode}): ${text.trim()}`);
  }
  const onAbort = (): void => r.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  let rest = '';
  try {
    for await (const chunk of r.res) {
      rest += String(chunk);
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (!line.trim()) continue;
        const parsed = schema.safeParse(JSON.parse(line));
        if (!parsed.success) throw new AgentError(`the agent sent an event this CLI does not understand: ${line}`);
        onItem(parsed.data);
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
