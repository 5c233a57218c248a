// A real nats-server with JetStream for a test: loopback only, a free port, its store in a temp
// dir; stopped by its own PID and the dir removed, even when the test fails. Never the packaged
// systemd service.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { NodeSummary } from '../../src/nats/summary.js';

/** A port the kernel just gave out and took back: free for the next bind, barring a race. */
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

export class NatsServer {
  private proc: ResultPromise | undefined;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts `nats-server -js` and waits until it accepts connections (at most 10 s). */
  static async start(): Promise<NatsServer> {
    const s = new NatsServer(await freePort(), mkdtempSync(join(tmpdir(), 'nats-master-e2e-')));
    await s.restart();
    return s;
  }

  /** (Re)starts the server on the same port and store. */
  async restart(): Promise<void> {
    if (this.proc) throw new Error('nats-server is already running');
    this.proc = execa('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { reject: false, stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (await accepts(this.port)) return;
      if (this.proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`nats-server did not start on 127.0.0.1:${this.port}`);
  }

  /** Stops this server (its own PID only) and waits for it to exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await p;
    clearTimeout(timer);
  }

  /** Stops the server and removes its store. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
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
