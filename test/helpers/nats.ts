// Real nats-server processes for tests: each on free loopback ports with its store in a temp dir,
// killed by its PID and its dir removed at cleanup. Never the packaged systemd service.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { connect, type KV, type NatsConnection } from 'nats';

/** A port free on 127.0.0.1 right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
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

export interface ClusterRole {
  name: string;
  clusterPort: number;
  routes: number[];
}

/** One nats-server -js; stop() and start() again keep its port and store (a restart). */
export class NatsServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'nx-nats-'));
  private proc: ResultPromise | undefined;

  constructor(
    readonly port: number,
    private readonly cluster?: ClusterRole,
  ) {}

  static async start(): Promise<NatsServer> {
    const s = new NatsServer(await freePort());
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', join(this.dir, 'store')];
    if (this.cluster) {
      const c = this.cluster;
      args.push('-n', c.name, '--cluster_name', 'nx', '--cluster', `nats://127.0.0.1:${c.clusterPort}`, '--routes', c.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    }
    this.proc = execa('nats-server', args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: { file: join(this.dir, `server.log`) } });
    for (let i = 0; i < 200 && !(await accepts(this.port)); i++) await new Promise((r) => setTimeout(r, 50));
    if (!(await accepts(this.port))) throw new Error(`nats-server on ${this.port} did not start (see ${this.dir}/server.log)`);
  }

  /** Kills the server by its PID (SIGKILL unless told): its store stays for a restart. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p?.pid || p.exitCode !== null) return;
    try {
      process.kill(p.pid, signal);
    } catch {
      /* already gone */
    }
    await p.catch(() => undefined);
    this.proc = undefined;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

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
  await Promise.all(servers.map((s) => s.start()));
  return servers;
}

/** A test's client, playing the master: creates the bucket, puts and deletes keys. */
export class TestMaster {
  private constructor(
    readonly nc: NatsConnection,
    readonly kv: KV,
  ) {}

  static async open(urls: string[], bucket: string, opts: { replicas?: number; history?: number; create?: boolean } = {}): Promise<TestMaster> {
    const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
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
