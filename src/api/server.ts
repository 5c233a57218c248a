/**
 * The running agent's local API: HTTP (node:http, no framework) on the unix socket
 * `<home>/agent.sock`, for `agent status`/`plan`/`events` and for monitors (see docs/api.md).
 *
 * The socket is never reachable by others, not even for an instant: it is bound inside a fresh
 * 0700 directory beside its final path, made 0600 there, and only then renamed into place (the
 * rename also replaces, atomically, a socket left by an agent killed with SIGKILL). A path that
 * exists is probed first: refused means stale; an answer means another live agent (of another
 * registry in the same directory: the registry claim allows one per registry), an error.
 * On close the socket is removed, if it is still ours (same inode).
 */
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, lstatSync, mkdtempSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.js';
import { AgentError } from '../errors.js';
import { BUILD_ID } from '../build-id.js';
import type { Registry } from '../registry/index.js';
import type { EventFollower } from './events-follow.js';
import { handle, type AgentSource, type MetricsSource, type RouteContext } from './routes.js';
import { MAX_SOCKET_PATH } from './socket-path.js';

export interface ApiServerOptions {
  socketPath: string;
  registry: Registry;
  agent: AgentSource;
  config: AgentConfig;
  log: Logger;
  /** Prometheus metrics for GET /metrics; without it that route is a 404. */
  metrics?: MetricsSource | undefined;
  /** How often a follower of the events log looks for new rows. */
  followPollMs?: number;
}

/** How long a probe of an existing socket waits for a connection. */
const PROBE_MS = 1000;

/** Whether something accepts connections on the socket at `path` (false: refused, gone, or no answer). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), PROBE_MS);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class ApiServer {
  private readonly server: Server;
  private readonly followers = new Set<EventFollower>();
  private ino: number | undefined;

  constructor(private readonly o: ApiServerOptions) {
    const ctx: RouteContext = {
      registry: o.registry,
      agent: o.agent,
      config: o.config,
      metrics: o.metrics,
      startedAt: Date.now(),
      followers: this.followers,
      followPollMs: o.followPollMs ?? 200,
    };
    this.server = createServer((req, res) => {
      // Which registry this agent serves: a CLI of another registry in the same directory does not trust it.
      res.setHeader('x-agent-registry', o.registry.path);
      if (BUILD_ID) res.setHeader('x-agent-build', BUILD_ID);
      void handle(ctx, req, res);
    });
  }

  /**
   * Binds and serves. Throws an AgentError naming the path when something else is there (another
   * live agent, a file that is not a socket): that is a setup to fix. When the socket cannot be
   * made (a full disk, a path too long), the agent reconciles all the same: logged, false returned,
   * and the CLI computes live.
   */
  async listen(): Promise<boolean> {
    const path = this.o.socketPath;
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      this.o.log.error({ socket: path }, `no local API: a unix socket path may be at most ${MAX_SOCKET_PATH} bytes (move the registry to a shorter path); status and plan compute live`);
      return false;
    }
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (existing && !existing.isSocket()) throw new AgentError(`cannot serve the local API on ${path}: it exists and is not a socket (remove it)`);
    if (existing && (await answers(path))) {
      throw new AgentError(`cannot serve the local API on ${path}: another live agent answers there (an agent of another registry in the same directory?); give each registry its own directory`);
    }
    // Bound privately, then moved into place: never world-accessible, and a stale socket is replaced atomically.
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(dirname(path), '.as'));
      const tmp = join(dir, 's');
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(tmp, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
      chmodSync(tmp, 0o600);
      renameSync(tmp, path);
      this.ino = statSync(path).ino;
    } catch (err) {
      this.server.close();
      this.o.log.error({ socket: path, err: (err as Error).message }, 'no local API: the socket could not be made; status and plan compute live');
      return false;
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
    this.o.log.info({ socket: path }, 'local API listening');
    return true;
  }

  /** Ends every follower, closes every connection, removes the socket if it is still ours. */
  async close(): Promise<void> {
    for (const f of this.followers) f.stop();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
    await closed;
    const path = this.o.socketPath;
    if (this.ino !== undefined && lstatSync(path, { throwIfNoEntry: false })?.ino === this.ino) {
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
    this.ino = undefined;
  }
}
