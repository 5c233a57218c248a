/**
 * A small client of podman's REST API (libpod, v4.0.0 paths) on its unix socket, the way Nomad's
 * podman driver talks to podman: no process start per call (a `podman ps` costs ~60 ms here, the
 * same listing through the API ~8 ms). One keep-alive connection pool per service incarnation.
 *
 * Invariants: every request has a bound, and past it the request is destroyed and named. A request
 * that got no answer at all (socket missing, connection refused or reset) says so (`unreachable`):
 * the service is gone and the caller may ask the CLI instead. An answer with an error status is
 * podman's own refusal, and its message (from the API's JSON error body) is what the error says.
 */
import { Agent, request } from 'node:http';
import { RuntimeError } from '../errors.js';

/** Why a request failed: no answer from the service, no answer in time, or podman's refusal. */
export type ApiFailureKind = 'unreachable' | 'timeout' | 'refused';

export class PodmanApiError extends RuntimeError {
  constructor(
    readonly kind: ApiFailureKind,
    operation: string,
    workload: string | undefined,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super('podman', operation, workload, message, options);
  }
}

export interface ApiBound {
  operation: string;
  workload?: string | undefined;
  timeoutMs: number;
}

/** podman's own words from an error answer (`{"cause","message","response"}`), else the status and body. */
export function apiErrorMessage(status: number, body: string): string {
  try {
    const j = JSON.parse(body) as { message?: unknown; cause?: unknown };
    if (typeof j.message === 'string' && j.message) return j.message;
    if (typeof j.cause === 'string' && j.cause) return j.cause;
  } catch {
    /* not JSON */
  }
  const text = body.trim().slice(0, 300);
  return `HTTP ${status}${text ? `: ${text}` : ''}`;
}

/**
 * The API's `filters` query value from `podman ps --filter` strings (`label=k=v`, `name=^x$`):
 * the key is what comes before the first `=`; several values of one key are ANDed for labels,
 * as on the command line.
 */
export function apiFilters(filters: string[]): string {
  const out: Record<string, string[]> = {};
  for (const f of filters) {
    const i = f.indexOf('=');
    if (i <= 0) throw new Error(`not a podman filter: ${f}`);
    (out[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  return encodeURIComponent(JSON.stringify(out));
}

export class PodmanApi {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });

  constructor(readonly socketPath: string) {}

  /** Whether the service answers `_ping` within the bound. */
  async ping(timeoutMs: number): Promise<boolean> {
    return this.call('GET', '/_ping', { operation: 'ping', timeoutMs }).then(
      () => true,
      () => false,
    );
  }

  /** The JSON text of `GET /containers/json?all=true` with these `podman ps` filters. */
  async listContainers(filters: string[], bound: ApiBound): Promise<string> {
    return (await this.call('GET', `/containers/json?all=true&filters=${apiFilters(filters)}`, bound)).body;
  }

  /** Starts a container by id or name; already running is not an error (podman answers 304). */
  async start(ref: string, bound: ApiBound): Promise<void> {
    await this.call('POST', `/containers/${encodeURIComponent(ref)}/start`, bound);
  }

  /** Ends the pool's connections; requests under way fail as unreachable. */
  close(): void {
    this.agent.destroy();
  }

  private call(method: 'GET' | 'POST', path: string, bound: ApiBound): Promise<{ status: number; body: string }> {
    const { operation, workload, timeoutMs } = bound;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: PodmanApiError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const req = request({ socketPath: this.socketPath, agent: this.agent, method, path: `/v4.0.0/libpod${path}`, headers: { Host: 'podman' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(new PodmanApiError('unreachable', operation, workload, `the podman API service broke off its answer: ${err.message}`, undefined, { cause: err })));
        res.on('end', () => {
          if (settled) return;
          const status = res.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8');
          if (status >= 400) return fail(new PodmanApiError('refused', operation, workload, apiErrorMessage(status, body), status));
          settled = true;
          clearTimeout(timer);
          resolve({ status, body });
        });
      });
      const timer = setTimeout(() => {
        const seconds = Math.round(timeoutMs / 100) / 10;
        fail(new PodmanApiError('timeout', operation, workload, `the podman API (${this.socketPath}) did not answer within ${seconds} s`));
        req.destroy();
      }, timeoutMs);
      req.on('error', (err) => fail(new PodmanApiError('unreachable', operation, workload, `the podman API service at ${this.socketPath} does not answer: ${err.message}`, undefined, { cause: err })));
      req.end();
    });
  }
}
