/**
 * The local API's query strings, parsed and checked (pure): a bad value is a 400 that names the
 * parameter and its rule, an unknown parameter too (a typo must not pass for a filter).
 */
import { z } from 'zod';

/** A request the API refuses: its HTTP status and a message naming what is wrong. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly parameter?: string,
  ) {
    super(message);
  }
}

export interface EventsQuery {
  limit: number;
  service: string | undefined;
  follow: boolean;
}

export const EVENTS_LIMIT_MAX = 100_000;
const DEFAULT_LIMIT = 20;

const limit = z.coerce.number({ error: `must be a whole number from 1 to ${EVENTS_LIMIT_MAX}` }).int(`must be a whole number from 1 to ${EVENTS_LIMIT_MAX}`).min(1, `must be a whole number from 1 to ${EVENTS_LIMIT_MAX}`).max(EVENTS_LIMIT_MAX, `must be a whole number from 1 to ${EVENTS_LIMIT_MAX}`);
const service = z.string().min(1, 'must not be empty').max(253, 'must be at most 253 characters');
const flag = z.enum(['1', '0', 'true', 'false'], { error: 'must be 1, 0, true or false' }).transform((v) => v === '1' || v === 'true');

/** Refuses a repeated parameter or one the route does not take. */
function only(params: URLSearchParams, allowed: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of params) {
    if (!allowed.includes(k)) throw new ApiError(400, allowed.length ? `unknown query parameter '${k}' (this route takes ${allowed.join(', ')})` : `unknown query parameter '${k}' (this route takes none)`, k);
    if (out.has(k)) throw new ApiError(400, `query parameter '${k}' is given twice`, k);
    out.set(k, v);
  }
  return out;
}

function field<T>(name: string, schema: z.ZodType<T>, raw: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) throw new ApiError(400, `query parameter '${name}' ${r.error.issues[0]?.message ?? 'is invalid'}, got '${raw}'`, name);
  return r.data;
}

/** `?limit=N&service=NAME&follow=1` of GET /v1/events. */
export function eventsQuery(params: URLSearchParams): EventsQuery {
  const q = only(params, ['limit', 'service', 'follow']);
  const l = q.get('limit');
  const s = q.get('service');
  const f = q.get('follow');
  return {
    limit: l === undefined ? DEFAULT_LIMIT : field('limit', limit, l),
    service: s === undefined ? undefined : field('service', service, s),
    follow: f === undefined ? false : field('follow', flag, f),
  };
}

/** Routes that take no query parameters. */
export function noQuery(params: URLSearchParams): void {
  only(params, []);
}
