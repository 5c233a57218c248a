/**
 * The local API's routes: what each GET answers, from the running agent's own knowledge (its live
 * view, its last pass) and its registry connection. Nothing here lists a runtime or changes
 * anything. The documents are those of the CLI (`status --json`, `plan --json`, `events --json`),
 * built by the same functions.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentConfig } from '../config/config.js';
import type { Assessed } from '../agent/reconciler.js';
import type { RuntimeSnapshot } from '../agent/observed-view.js';
import { planDocument, statusReport } from '../agent/status.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Registry } from '../registry/index.js';
import { EventFollower } from './events-follow.js';
import { healthVerdict, recentWithinMs } from './health.js';
import { ApiError, eventsQuery, noQuery } from './query.js';

/** What the API answers from: the running agent (AgentLoop's read-only accessors). */
export interface AgentSource {
  assessNow(): Assessed;
  viewNow(): Partial<Record<RuntimeKind, RuntimeSnapshot>>;
  lastPassAt(): Date | undefined;
}

/** Anything that serves the Prometheus exposition text (src/agent/metrics.ts's AgentMetrics). */
export interface MetricsSource {
  contentType: string;
  text(): Promise<string>;
}

export interface RouteContext {
  registry: Registry;
  agent: AgentSource;
  config: AgentConfig;
  metrics: MetricsSource | undefined;
  startedAt: number;
  /** Every follower under way, so the agent's stop can end them. */
  followers: Set<EventFollower>;
  followPollMs: number;
}

type Handler = (ctx: RouteContext, q: URLSearchParams, res: ServerResponse) => Promise<void> | void;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

const ROUTES: Record<string, Handler> = {
  '/v1/status': (ctx, q, res) => {
    noQuery(q);
    sendJson(res, 200, statusReport(ctx.registry, ctx.agent.assessNow()));
  },
  '/v1/plan': (ctx, q, res) => {
    noQuery(q);
    sendJson(res, 200, planDocument(ctx.agent.assessNow()));
  },
  '/v1/events': (ctx, q, res) => {
    const eq = eventsQuery(q);
    if (!eq.follow) return sendJson(res, 200, ctx.registry.events.recent(eq.limit, { service: eq.service }));
    const f = new EventFollower(res, { registry: ctx.registry, limit: eq.limit, service: eq.service, pollMs: ctx.followPollMs });
    ctx.followers.add(f);
    f.start(() => ctx.followers.delete(f));
  },
  '/healthz': (ctx, q, res) => {
    noQuery(q);
    const runtimes: Record<string, { ok: boolean; error: string | null }> = {};
    for (const [kind, s] of Object.entries(ctx.agent.viewNow())) if (s) runtimes[kind] = { ok: s.listing.ok, error: s.listing.ok ? null : s.listing.error };
    const now = Date.now();
    const v = healthVerdict({ now, lastPassAt: ctx.agent.lastPassAt()?.getTime(), startedAt: ctx.startedAt, recentWithinMs: recentWithinMs(ctx.config.resync, new Date(now)), runtimes });
    sendJson(res, v.status, v.body);
  },
  '/metrics': async (ctx, q, res) => {
    noQuery(q);
    if (!ctx.metrics) throw new ApiError(404, 'this agent serves no metrics');
    const text = await ctx.metrics.text();
    res.writeHead(200, { 'content-type': ctx.metrics.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  },
};

export const ROUTE_PATHS = Object.keys(ROUTES);

/** One request: 404 for an unknown path, 405 for anything but GET (or HEAD), 400 for a bad query. */
export async function handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://agent');
    const route = ROUTES[url.pathname];
    if (!route) throw new ApiError(404, `no route ${url.pathname} (routes: ${ROUTE_PATHS.join(', ')})`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new ApiError(405, `${req.method ?? '?'} ${url.pathname}: only GET is allowed`);
    }
    await route(ctx, url.searchParams, res);
  } catch (err) {
    if (res.headersSent) return void res.destroy(err as Error);
    if (err instanceof ApiError) return sendJson(res, err.status, { error: err.message, ...(err.parameter ? { parameter: err.parameter } : {}) });
    sendJson(res, 500, { error: `the agent could not answer: ${(err as Error).message}` });
  }
}
