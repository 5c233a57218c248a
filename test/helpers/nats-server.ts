// Real nats-server processes for tests and benches, and a test's client playing the master: each
// server on free loopback ports with its store and log in a temp dir, stopped by its own PID and
// the dir removed at cleanup, even when the test fails. Never the packaged systemd service.
// The one builder of this fixture: test/e2e/nats.test.ts, test/e2e/fleet-nats.test.ts and
// bench/nats.bench.ts all start their servers here.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { connect, type KV, type NatsConnection } from 'nats';
import type { NodeSummary } from '../../src/nats/summary.js';

/** A port the kernel just gave out on 127.0.0.1 and took back: free for the next bind, barring a race. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect({ host: '127.0.0.1', port });
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

/** A server that speaks only TLS, with its certificate, and (verify) one that also checks clients' certificates against `ca`. */
export interface ServerTls {
  cert: string;
  key: string;
  ca: string;
  verify: boolean;
}

export interface ClusterRole {
  name: string;
  clusterPort: number;
  routes: number[];
}

/** One `nats-server -js`; stop() then start() again keeps its port and store (a restart). */
export class NatsServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'nats-e2e-'));
  private proc: ResultPromise | undefined;

  constructor(
    readonly port: number,
    private readonly cluster?: ClusterRole,
    private readonly tls?: ServerTls,
  ) {}

  /** A single server on a free port, accepting connections. */
  static async start(opts: { tls?: ServerTls } = {}): Promise<NatsServer> {
    const s = new NatsServer(await freePort(), undefined, opts.tls);
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** (Re)starts the server on its port and store; waits until it accepts connections (at most 10 s). */
  async start(): Promise<void> {
    if (this.proc) throw new Error('nats-server is already running');
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', join(this.dir, 'store')];
    if (this.tls) args.push('--tls', '--tlscert', this.tls.cert, '--tlskey', this.tls.key, '--tlscacert', this.tls.ca, ...(this.tls.verify ? ['--tlsverify'] : []));
    if (this.cluster) {
      const c = this.cluster;
      args.push('-n', c.name, '--cluster_name', 'nx', '--cluster', `nats://127.0.0.1:${c.clusterPort}`, '--routes', c.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    }
    const proc = execa('nats-server', args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: { file: join(this.dir, 'server.log') } });
    this.proc = proc;
    for (let i = 0; i < 200; i++) {
      if (await accepts(this.port)) return;
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`nats-server did not start on 127.0.0.1:${this.port} (see ${this.dir}/server.log)`);
  }

  /** Stops the server by its PID (SIGKILL unless told) and waits for it: its store stays for a restart. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p?.pid || p.exitCode !== null) return;
    try {
      process.kill(p.pid, signal);
    } catch {
      /* already gone */
    }
    await p.catch(() => undefined);
  }

  /** Stops the server and removes its store and log. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three servers routed to each other on loopback ports: a JetStream cluster. */
export async function startCluster(): Promise<NatsServer[]> {
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const cports = await Promise.all([0, 1, 2].map(() => freePort()));
  const servers = ports.map((p, i) => new NatsServer(p, { name: `nx${i}`, clusterPort: cports[i]!, routes: cports.filter((_, j) => j !== i) }));
  try {
    await Promise.all(servers.map((s) => s.start()));
  } catch (err) {
    for (const s of servers) await s.cleanup();
    throw err;
  }
  return servers;
}

/** A test's client, playing the master: creates the bucket, puts and deletes keys. */
export class TestMaster {
  private constructor(
    readonly nc: NatsConnection,
    readonly kv: KV,
  ) {}

  static async open(urls: string[], bucket: string, opts: { replicas?: number; history?: number; create?: boolean; tls?: { ca: string; cert: string; key: string } } = {}): Promise<TestMaster> {
    const tls = opts.tls ? { tls: { caFile: opts.tls.ca, certFile: opts.tls.cert, keyFile: opts.tls.key } } : {};
    const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...tls });
    // A cluster elects its JetStream leader a few seconds after start: retry until it answers.
    let lastErr: unknown;
    for (let i = 0; i < 60; i++) {
      try {
        const kv = await nc.jetstream().views.kv(bucket, { replicas: opts.replicas ?? 1, history: opts.history ?? 1, bindOnly: opts.create === false });
        return new TestMaster(nc, kv);
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await nc.close();
    throw lastErr;
  }

  async put(key: string, value: unknown): Promise<number> {
    return this.kv.put(key, typeof value === 'string' ? value : JSON.stringify(value));
  }

  async status(node: string): Promise<Record<string, unknown> | undefined> {
    const e = await this.kv.get(`status.${node}`);
    return e && e.operation === 'PUT' ? (e.json() as Record<string, unknown>) : undefined;
  }

  async close(): Promise<void> {
    await this.nc.close().catch(() => undefined);
  }
}

/** A service manifest as the bucket holds it (JSON): containers of busybox running `cmd`. */
export function natsService(name: string, components: Record<string, string[]>, image = 'localhost/agent-busybox:latest'): Record<string, unknown> {
  return { name, runtime: 'container', components: Object.entries(components).map(([c, cmd]) => ({ name: c, image, cmd })) };
}

/** A valid `status.<node>` value (NodeSummarySchema), written `ageSeconds` ago; override what a test needs. */
export function nodeSummary(node: string, opts: { ageSeconds?: number; counts?: Record<string, number>; failing?: NodeSummary['failing']; rejected?: NodeSummary['source']['rejected']; appliedRevision?: number | null } = {}): NodeSummary {
  const at = new Date(Date.now() - (opts.ageSeconds ?? 0) * 1000).toISOString();
  const failing = opts.failing ?? [];
  return {
    node,
    agent_id: `agent-${node}`,
    version: '0.1.0',
    at,
    last_pass_at: at,
    counts: opts.counts ?? { 'in-sync': 1 },
    failing,
    failing_total: failing.length,
    runtimes: { container: { ok: true, error: null } },
    source: { applied_revision: opts.appliedRevision ?? null, rejected: opts.rejected ?? [] },
    capacity: null,
  };
}

/** The files of a test CA: its cert, a server cert for 127.0.0.1 and a client cert, each with its key. */
export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA and the certificates it signs, made with openssl in `dir` (ed25519: quick to make). */
export async function makeTestCerts(dir: string): Promise<TestCerts> {
  const f = (name: string): string => join(dir, name);
  const ssl = (args: string[]) => execa('openssl', args, { cwd: dir, stdin: 'ignore' });
  await ssl(['req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=agent test CA']);
  for (const [who, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    await ssl(['req', '-newkey', 'ed25519', '-nodes', '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=agent test ${who}`]);
    writeFileSync(f(`${who}.ext`), `${ext}\n`);
    await ssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${who}.pem`), '-days', '1', '-extfile', f(`${who}.ext`)]);
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}
