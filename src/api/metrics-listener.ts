/**
 * The Prometheus scrape endpoint over TCP (setting `metrics_listen`): GET /metrics and nothing
 * else (404), no framework, no state of its own. It serves whatever exposition it is given, so
 * the agent's unix-socket API can serve the same object. An address that cannot be bound (in use,
 * not on this host, a privileged port) is an error naming the setting; the caller decides whether
 * the agent runs on without the listener.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { parseListen } from '../config/config.js';
import { AgentError } from '../errors.js';

/** What the listener serves: AgentMetrics fits. */
export interface MetricsSource {
  readonly contentType: string;
  text(): Promise<string>;
}

export interface MetricsListener {
  /** The address bound: with port 0, the port the kernel picked. */
  address: { host: string; port: number };
  close(): Promise<void>;
}

/** Why an address cannot be bound, in words an operator acts on. */
function bindProblem(code: string | undefined, listen: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return `${listen} is in use (another agent or program listens there): set metrics_listen to a free address, or "" to turn the listener off`;
    case 'EADDRNOTAVAIL':
      return `${listen} is not an address of this host: set metrics_listen to one of its addresses (127.0.0.1 by default)`;
    case 'EACCES':
      return `${listen} needs privileges to bind (a port below 1024): pick a port of 1024 or above in metrics_listen`;
    default:
      return `${listen} cannot be bound (${code ?? 'unknown error'})`;
  }
}

/**
 * Binds `listen` (HOST:PORT, already validated by the settings) and serves GET /metrics from
 * `source`. Rejects with an AgentError naming `metrics_listen` when the address cannot be bound.
 */
export async function startMetricsListener(listen: string, source: MetricsSource, log: Logger): Promise<MetricsListener> {
  const at = parseListen(listen);
  if (!at) throw new AgentError(`metrics_listen: ${listen} is not IP:PORT`);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed: GET /metrics\n');
      return;
    }
    source.text().then(
      (body) => res.writeHead(200, { 'content-type': source.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: Error) => {
        log.error({ err: err.message }, 'metrics could not be collected');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics could not be collected: ${err.message}\n`);
      },
    );
  });
  // A scraper's idle keep-alive connection must not hold the agent's stop.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(new AgentError(`metrics_listen: ${bindProblem(err.code, listen)}`, { cause: err }));
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'metrics listener failed'));
  const bound = server.address() as AddressInfo;
  const address = { host: bound.address, port: bound.port };
  const shown = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  log.info({ metrics_listen: listen, address: shown }, `serving Prometheus metrics on http://${shown}/metrics`);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections of a scraper would hold close() open until they time out.
        server.closeAllConnections();
      }),
  };
}
