/**
 * A minimal client of podman's REST API (libpod, v4.0.0 paths) on its unix socket, as Nomad's podman
 * driver uses it: one keep-alive connection pool, JSON in and out, and the event stream read line by
 * line. For benchmarks; it does no retries and hides no error (a non-2xx answer rejects).
 */
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';

export interface ApiAnswer {
  status: number;
  body: string;
}

export class PodmanApi {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });

  constructor(readonly socketPath: string) {}

  call(method: 'GET' | 'POST' | 'DELETE', path: string, okStatuses: number[] = [200, 201, 204, 304]): Promise<ApiAnswer> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, agent: this.agent, method, path: `/v4.0.0/libpod${path}`, headers: { Host: 'd' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (!okStatuses.includes(res.statusCode ?? 0)) reject(new Error(`${method} ${path}: HTTP ${res.statusCode}: ${body.slice(0, 500)}`));
          else resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * GET /events?stream=true with `filters`; calls `onEvent` for each line (parsed JSON). Returns a
   * function that ends the stream. Resolves once the response headers arrived (the stream is open).
   */
  events(filters: Record<string, string[]>, onEvent: (e: Record<string, unknown>) => void): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const path = `/v4.0.0/libpod/events?stream=true&filters=${encodeURIComponent(JSON.stringify(filters))}`;
      const req = request({ socketPath: this.socketPath, method: 'GET', path, headers: { Host: 'd' } }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET events: HTTP ${res.statusCode}`));
          return;
        }
        // Ending the stream (req.destroy) aborts the response: that is not an error here.
        res.on('error', () => undefined);
        const lines = createInterface({ input: res });
        lines.on('error', () => undefined);
        lines.on('line', (line) => {
          try {
            onEvent(JSON.parse(line) as Record<string, unknown>);
          } catch {
            /* not JSON */
          }
        });
        resolve(() => req.destroy());
      });
      req.on('error', (err) => reject(err)); // after resolve: the stream ended, ignored
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
