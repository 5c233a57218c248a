/**
 * The node a reaction benchmark drives: its own temp dir, registry, settings file and agent id, a
 * long-running `agent run` (debug logs to a file), a master's writes through the `sqlite3` CLI,
 * and a cleanup that removes every container, VM, process and file the benchmark made.
 * Invariant: everything made carries the run's tag (names, the bench label) or lives under the
 * node's dirs, and cleanup acts only on those, by pid or by label.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ChildTracker } from './children.js';
import { nowMs } from './events.js';
import { cpuTicks, killQemus, pidsWithEnv, qemuPidsWith } from './procfs.js';

export const IMAGE = 'localhost/agent-busybox:latest';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LogLine {
  time: number;
  msg: string;
  [k: string]: unknown;
}

export class ReactionNode {
  readonly dir = mkdtempSync(join(tmpdir(), 'agent-bench-reaction-'));
  readonly bareDir = mkdtempSync(join(tmpdir(), 'agent-bench-reactionbare-'));
  readonly db = join(this.dir, 'agent.db');
  readonly config = join(this.dir, 'agent.toml');
  readonly logFile = join(this.dir, 'agent.log');
  agentId = '';
  agent: ChildProcess | undefined;

  constructor(
    readonly tag: string,
    private readonly children: ChildTracker,
    private readonly bin: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly guestImages: string,
  ) {}

  /** The registry (created by an empty `run --once`), its settings, the guest images. */
  async create(o: { backoffMaxMs: number }): Promise<void> {
    symlinkSync(this.guestImages, join(this.dir, 'images'));
    // A bridge and an nft table of our own name that never exist: VMs use SLIRP, nothing host-wide is touched.
    writeFileSync(this.config, [
      `[backoff]\nbase_ms = 1000\nmax_ms = ${o.backoffMaxMs}`,
      `[net]\nbridge = "rb${this.tag}"\ntable = "rb${this.tag}"`,
      `[qemu]\naccel = "tcg"`,
      // BENCH_REACTION_PODMAN_API=off: the agent's podman calls all through the CLI (default: auto, the API).
      `[podman]\napi = "${process.env.BENCH_REACTION_PODMAN_API === 'off' ? 'off' : 'auto'}"`,
    ].join('\n\n') + '\n');
    await this.children.must(process.execPath, [this.bin, '--db', this.db, '--config', this.config, 'run', '--once'], 120_000);
    this.agentId = this.query<{ value: string }>("SELECT value FROM meta WHERE key = 'agent_id'")[0]!.value;
  }

  /** `agent run` in the background; resolves once its heartbeat is in the registry. */
  async startAgent(): Promise<number> {
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [this.bin, '--db', this.db, '--config', this.config, 'run'], { env: { ...this.env, AGENT_LOG_LEVEL: 'debug' }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.children.track(child);
    this.agent = child;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agent run exited at start:\n${this.logTail()}`);
      if (this.logLines().some((l) => l.msg === 'reconcile pass')) return child.pid!;
      if (Date.now() > deadline) throw new Error(`agent run did not finish a first pass within 30 s:\n${this.logTail()}`);
      await sleep(100);
    }
  }

  /** Fails when the agent is no longer running. */
  checkAgent(): void {
    const a = this.agent;
    if (a && (a.exitCode !== null || a.signalCode !== null)) throw new Error(`agent run exited (${a.exitCode ?? a.signalCode}):\n${this.logTail()}`);
  }

  /** A master's commit: the sqlite3 CLI runs `sql` in one transaction. Resolves with the time sqlite3 had exited. */
  async commit(sql: string): Promise<{ spawnedAt: number; doneAt: number }> {
    const spawnedAt = nowMs();
    await this.children.must('sqlite3', ['-cmd', '.timeout 5000', this.db, `PRAGMA foreign_keys = ON; BEGIN IMMEDIATE; ${sql} COMMIT;`], 30_000);
    return { spawnedAt, doneAt: nowMs() };
  }

  query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(this.db, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  logLines(): LogLine[] {
    if (!existsSync(this.logFile)) return [];
    const out: LogLine[] = [];
    for (const l of readFileSync(this.logFile, 'utf8').split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  logTail(): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-3000);
    } catch {
      return '';
    }
  }

  /** CPU ticks of the agent (self, reaped children) and of its live helpers (podman events, monitors). */
  agentCpu(): { self: number; children: number; helpers: number } | undefined {
    const pid = this.agent?.pid;
    if (pid === undefined) return undefined;
    const t = cpuTicks(pid);
    if (!t) return undefined;
    const helpers = pidsWithEnv(`MCP_AGENT_ID=${this.agentId}`).reduce((s, p) => s + (cpuTicks(p)?.self ?? 0), 0);
    return { ...t, helpers };
  }

  /** Our containers in podman: the agent's (by its label) and the bare ones (by the bench label). */
  async containerIds(): Promise<string[]> {
    const ids = new Set<string>();
    const filters = [`label=io.mcp-agent.bench=${this.tag}`, ...(this.agentId ? [`label=io.mcp-agent.agent=${this.agentId}`] : [])];
    for (const f of filters) {
      const r = await this.children.run('podman', ['ps', '-a', '-q', '--no-trunc', '--filter', f], { timeoutMs: 60_000 });
      for (const id of r.stdout.split('\n').filter(Boolean)) ids.add(id);
    }
    return [...ids];
  }

  /** Ends the agent (SIGTERM, then SIGKILL) and its helpers, removes our containers and QEMUs, then the dirs. */
  async cleanup(log: (m: string) => void): Promise<boolean> {
    const a = this.agent;
    if (a?.pid !== undefined && a.exitCode === null && a.signalCode === null) {
      process.kill(a.pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (a.exitCode === null && a.signalCode === null && Date.now() < deadline) await sleep(100);
      if (a.exitCode === null && a.signalCode === null) process.kill(a.pid, 'SIGKILL');
    }
    if (this.agentId) {
      for (const pid of pidsWithEnv(`MCP_AGENT_ID=${this.agentId}`)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    const ids = await this.containerIds().catch(() => []);
    if (ids.length > 0) await this.children.run('podman', ['rm', '--force', '--time', '0', ...ids], { timeoutMs: 300_000 });
    const dirs = [this.dir, this.bareDir];
    await killQemus(qemuPidsWith(dirs), dirs);
    const leftQemu = qemuPidsWith(dirs);
    const leftContainers = await this.containerIds().catch(() => ['(podman ps failed)']);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    const dirsLeft = dirs.filter((d) => existsSync(d));
    log(`cleanup: ${ids.length} container(s) removed; left: ${leftContainers.length} container(s), ${leftQemu.length} QEMU, ${dirsLeft.length} dir(s)`);
    return leftContainers.length === 0 && leftQemu.length === 0 && dirsLeft.length === 0;
  }
}
