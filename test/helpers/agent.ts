// Helpers for end-to-end tests: run the real CLI (bin/agent.js over the bundle in dist/), talk to real podman,
// and clean up every container a test's registry owns, even when the test fails.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin/agent.js');
export const IMAGE = 'localhost/agent-busybox:latest';
export const PODMAN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768', '--network', 'none', '--init'];

if (!existsSync(join(ROOT, 'dist/cli/main.js')) || !existsSync(join(ROOT, 'dist/bundle/agent.cjs'))) {
  throw new Error('dist/ is missing: run scripts/test (or npm run build) before the end-to-end tests');
}
// bin/agent.js runs the bundle: one older than tsc's output means only tsc ran since the last build.
if (statSync(join(ROOT, 'dist/bundle/agent.cjs')).mtimeMs < statSync(join(ROOT, 'dist/cli/main.js')).mtimeMs) {
  throw new Error('dist/bundle/agent.cjs is older than dist/cli/main.js: run npm run build (tsc, then the bundle)');
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Test agents serve no TCP metrics unless a test asks (test/e2e/metrics.test.ts): agents of parallel
 * tests would all reach for the default 127.0.0.1:9469.
 */
const NO_METRICS_LISTENER = { AGENT_METRICS_LISTEN: '' };

/** A scratch node: its own directory, registry and agent id; unique service names. */
export class TestNode {
  readonly dir = mkdtempSync(join(tmpdir(), 'agent-e2e-'));
  readonly db = join(this.dir, 'agent.db');
  private readonly agents: ResultPromise[] = [];

  /** Set by inNetns(): every agent command then runs inside that namespace. */
  netns: string | undefined;

  constructor(readonly env: Record<string, string> = {}) {}

  /** The command prefix that runs `node` inside the node's namespace, if any. */
  private nodeCmd(): [string, string[]] {
    return this.netns ? ['ip', ['netns', 'exec', this.netns, 'node']] : ['node', []];
  }

  /** A service name unique to this run, so parallel or leftover runs never collide in podman. */
  static serviceName(prefix = 't'): string {
    return `${prefix}${randomBytes(4).toString('hex')}`;
  }

  async cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
    const [cmd, pre] = this.nodeCmd();
    const r = await execa(cmd, [...pre, BIN, '--db', this.db, ...args], {
      reject: false,
      input: opts.input,
      stdin: opts.input === undefined ? 'ignore' : undefined,
      env: { AGENT_LOG_LEVEL: 'warn', ...this.env, ...opts.env },
      timeout: 180_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** Runs the CLI and fails with its output when the exit code is not 0. */
  async ok(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.cli(args, opts);
    if (r.exitCode !== 0) throw new Error(`agent ${args.join(' ')} exited ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  async status(): Promise<StatusJson> {
    return JSON.parse(await this.ok(['status', '--json'])) as StatusJson;
  }

  async apply(manifest: string, name = 'svc.toml'): Promise<string> {
    const file = join(this.dir, name);
    writeFileSync(file, manifest);
    return this.ok(['apply', '-f', file]);
  }

  /** Starts `agent run` in the background (its logs go to a file in the node's dir). */
  startAgent(env: Record<string, string> = {}): ResultPromise {
    const [cmd, pre] = this.nodeCmd();
    const p = execa(cmd, [...pre, BIN, '--db', this.db, 'run'], {
      reject: false,
      env: { AGENT_LOG_LEVEL: 'debug', ...NO_METRICS_LISTENER, ...this.env, ...env },
      stdin: 'ignore',
      stdout: { file: join(this.dir, 'agent.out') },
      stderr: { file: join(this.dir, 'agent.log') },
    });
    this.agents.push(p);
    return p;
  }

  /** Starts `agent run --once` in the background, logs to a file in the node's dir (for signal tests). */
  startOnce(env: Record<string, string> = {}): ResultPromise {
    return this.spawnCli(['run', '--once'], { AGENT_LOG_LEVEL: 'debug', ...env }, 'once');
  }

  /**
   * Starts any CLI command in the background (e.g. `run --once`, to signal it mid-way); cleaned up
   * like an agent. With `logTo`, its stdout and stderr go to `<logTo>.out` and `<logTo>.log` in the node's dir.
   */
  spawnCli(args: string[], env: Record<string, string> = {}, logTo?: string): ResultPromise {
    const [cmd, pre] = this.nodeCmd();
    const p = execa(cmd, [...pre, BIN, '--db', this.db, ...args], {
      reject: false,
      env: { AGENT_LOG_LEVEL: 'warn', ...NO_METRICS_LISTENER, ...this.env, ...env },
      stdin: 'ignore',
      ...(logTo ? { stdout: { file: join(this.dir, `${logTo}.out`) }, stderr: { file: join(this.dir, `${logTo}.log`) } } : {}),
    });
    this.agents.push(p);
    return p;
  }

  /** The running agent's local API socket (src/api/server.ts). */
  get socket(): string {
    return join(this.dir, 'agent.sock');
  }

  /** One request to the running agent's local API, with a real client (curl --unix-socket). */
  async api(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    const r = await execa('curl', ['-s', '--max-time', '10', '-X', method, '--unix-socket', this.socket, '-w', '\n%{http_code}', `http://agent${path}`], { reject: false });
    const out = String(r.stdout);
    const nl = out.lastIndexOf('\n');
    return { status: Number(out.slice(nl + 1)), body: out.slice(0, nl) };
  }

  /** Runs one read-only query on the node's registry (as a master would read it). */
  query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(this.db, { readonly: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  agentId(): string {
    const db = new Database(this.db, { readonly: true });
    try {
      return (db.prepare("SELECT value FROM meta WHERE key = 'agent_id'").get() as { value: string }).value;
    } finally {
      db.close();
    }
  }

  /** This node's containers as podman sees them. */
  async containers(): Promise<PodmanContainer[]> {
    return podmanPs(this.agentId());
  }

  /**
   * Gives the node the project's guest image (built by scripts/build-guest) as its images/ dir.
   * VMs boot overlays of it, so nodes can share it.
   */
  useGuestImages(): void {
    if (!existsSync(join(GUEST_IMAGES, 'guest.manifest'))) throw new Error(`no guest image in ${GUEST_IMAGES}: run scripts/build-guest`);
    symlinkSync(GUEST_IMAGES, join(this.dir, 'images'));
  }

  /** pid of the QEMU of a workload of this node, from its state dir. */
  qemuPid(workload: string): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, 'vm', workload, 'qemu.pid'), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  /** QEMU processes whose command line points into this node's directory. */
  qemuProcesses(): number[] {
    const pids: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (argv.startsWith('qemu-system') && argv.includes(this.dir)) pids.push(Number(p));
      } catch {
        /* gone */
      }
    }
    return pids;
  }

  /** Kills agents still running, removes this node's containers and its directory. */
  async cleanup(): Promise<void> {
    for (const a of this.agents) {
      if (a.exitCode === null && a.signalCode === null && a.pid) {
        try {
          process.kill(a.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await a.catch(() => undefined);
    }
    // A test may leave the registry empty or corrupt on purpose: then it has no agent id to look for.
    let agentId: string | undefined;
    try {
      agentId = existsSync(this.db) ? this.agentId() : undefined;
    } catch {
      agentId = undefined;
    }
    // The helpers of agents killed with SIGKILL (`podman events` filtered on this node's agent id,
    // the nft/ip monitors and the podman API service, which carry it in their environment) end
    // before the containers are removed: the API service, told to stop by its agent's death
    // (SIGTERM), finishes the requests under way, and none of them should act on a container
    // while it is removed. (This did not end the untracked t<hex>-api containers some runs
    // leave: those come from a test's own `podman rm -f` racing the live agent's restart.)
    if (agentId) await endHelpers(agentHelperProcesses(agentId));
    if (agentId) {
      const ids = (await execa('podman', ['ps', '-a', '-q', '--filter', `label=io.mcp-agent.agent=${agentId}`])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await execa('podman', ['rm', '--force', '--time', '0', ...ids], { reject: false });
    }
    // VMs: SIGKILL every QEMU whose command line points into this node's directory.
    for (const pid of this.qemuProcesses()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await this.removeFiles();
  }

  protected async removeFiles(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A node whose registry lives alone on a small tmpfs (<dir>/registry), to fill it for real. The
 * agent's logs stay outside it. Only for containers: VM state and images live beside the registry.
 */
export class TmpfsRegistryNode extends TestNode {
  readonly registryDir = join(this.dir, 'registry');
  override readonly db = join(this.registryDir, 'agent.db');
  private mounted = false;

  async mount(sizeMiB: number): Promise<void> {
    mkdirSync(this.registryDir);
    await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', this.registryDir]);
    this.mounted = true;
  }

  /** Fills the tmpfs to the last block (after moving the WAL into the file: no slack left to reuse). */
  async fill(): Promise<void> {
    await execa('sqlite3', [this.db, 'PRAGMA wal_checkpoint(TRUNCATE);']);
    const r = await execa('dd', ['if=/dev/zero', `of=${join(this.registryDir, 'filler')}`, 'bs=64k'], { reject: false });
    if (!/No space left on device/.test(String(r.stderr))) throw new Error(`dd did not fill ${this.registryDir}: ${r.stderr}`);
  }

  unfill(): void {
    rmSync(join(this.registryDir, 'filler'), { force: true });
  }

  protected override async removeFiles(): Promise<void> {
    if (this.mounted) await execa('umount', [this.registryDir]);
    this.mounted = false;
    await super.removeFiles();
  }
}

/**
 * A podman the test can break: a script in `dir` that execs the real podman, switched to `exit 1`
 * by `break()` (and back by `mend()`). Point `podman.binary` at `path`.
 */
export class PodmanSwitch {
  readonly path: string;
  constructor(dir: string) {
    this.path = join(dir, 'podman-switch');
    this.mend();
  }
  break(): void {
    this.write('#!/bin/sh\necho "podman made unusable by the test" >&2\nexit 1\n');
  }
  mend(): void {
    this.write('#!/bin/sh\nexec podman "$@"\n');
  }
  /** Written beside and renamed over: a script being started is never seen half-written. */
  private write(script: string): void {
    writeFileSync(`${this.path}.new`, script, { mode: 0o755 });
    renameSync(`${this.path}.new`, this.path);
  }
}

/** SIGTERM to each, then SIGKILL to what has not exited within `graceMs` (zombies count as exited). */
export async function endHelpers(pids: number[], graceMs = 10_000): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  pids.forEach((pid) => signal(pid, 'SIGTERM'));
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  pids.filter(alive).forEach((pid) => signal(pid, 'SIGKILL'));
}

/** Processes an agent with this id started to watch the host: its podman events, monitors and podman API service. */
export function agentHelperProcesses(agentId: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      if ((argv.startsWith('podman\0events') && argv.includes(`io.mcp-agent.agent=${agentId}`)) || environ.includes(`MCP_AGENT_ID=${agentId}`)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

export const GUEST_IMAGES = join(ROOT, 'var/images');

export interface PodmanContainer {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string> | null;
  ExitCode: number;
}

export async function podmanPs(agentId: string): Promise<PodmanContainer[]> {
  const r = await execa('podman', ['ps', '-a', '--format', 'json', '--filter', `label=io.mcp-agent.agent=${agentId}`]);
  return JSON.parse(r.stdout || '[]') as PodmanContainer[];
}

export interface StatusRowJson {
  service: string;
  component: string;
  workload: string;
  runtime: string | null;
  desired: string;
  observed: string;
  drift: string;
  reason: string;
  next_action: string | null;
  backoff_until: string | null;
  last_error: string | null;
  started_at: string | null;
  handle: string | null;
  address: string | null;
  network: string | null;
  restarts: number;
  health?: 'starting' | 'healthy' | 'unhealthy' | null;
  last_event: { action: string; outcome: string; message: string } | null;
}

export interface StatusJson {
  registry: { path: string; writable: boolean; reason: string | null; free_bytes: number | null };
  agent: { running: boolean; pid: number | null; once_in_progress: boolean };
  runtimes: Record<string, { ok: boolean; error: string | null }>;
  summary: Record<string, number>;
  components: StatusRowJson[];
}

export function row(s: StatusJson, service: string, component: string): StatusRowJson {
  const r = s.components.find((c) => c.service === service && c.component === component);
  if (!r) throw new Error(`no status row for ${service}/${component}: ${JSON.stringify(s.components)}`);
  return r;
}

/** Polls `fn` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A container service manifest with the given components (name -> cmd). */
export function containerService(name: string, components: Record<string, string[]>, extra: Record<string, string> = {}): string {
  let out = `name = "${name}"\nruntime = "container"\n`;
  for (const [comp, cmd] of Object.entries(components)) {
    out += `\n[[components]]\nname = "${comp}"\nimage = "${IMAGE}"\ncmd = ${JSON.stringify(cmd)}\n`;
    if (extra[comp]) out += `${extra[comp]}\n`;
  }
  return out;
}

export const SLEEP = ['sleep', '2147483647'];

/** Boot the project's guest image from its kernel and initrd. */
export const VM_KERNEL = 'kernel = "vmlinux"\ninitrd = "initrd.gz"';

/** A unikernel service manifest (128 MiB each): component name -> extra TOML lines (e.g. VM_KERNEL). */
export function vmService(name: string, components: Record<string, string>): string {
  let out = `name = "${name}"\nruntime = "unikernel"\n`;
  for (const [comp, body] of Object.entries(components)) out += `\n[[components]]\nname = "${comp}"\nmemory = 128\n${body}\n`;
  return out;
}
