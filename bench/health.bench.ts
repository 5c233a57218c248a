/**
 * Benchmark (not a test): what health probes cost, with N real containers (default 100) under tcp
 * checks every second, as ratios against baselines measured in the same run.
 *
 *   npm run bench:health        (env: BENCH_HEALTH_N, default 100; BENCH_HEALTH_WINDOW_S, default 30;
 *                                BENCH_HEALTH_PARALLELISM: health.parallelism, default the setting's 8)
 *
 * Setup: a temp dir and registry, services bench<random><letter> of at most 100 components each
 * running busybox `httpd -f -p 8080` (--network none), each with `health = { kind = "tcp", port =
 * 8080, interval_seconds = 1 }`; started with `agent run --once`, then `agent run` in the
 * background (default settings: health.parallelism 8). Once every component is healthy and a
 * warm-up of 5 s has passed, a window of W seconds:
 *   (a) agent CPU: utime+stime of the agent's pid from /proc/PID/stat over the window, as a share
 *       of one core (goal < 5%); beside it the CPU of the probe commands it reaped (cutime+cstime)
 *       and of the shells it keeps in the containers' namespaces for tcp probes (with their nc).
 *   (b) probe latency: the mean of mcp_agent_health_probe_seconds over the window (from the agent's
 *       /metrics on its unix socket: nsenter + nc -z as the agent runs them, slot wait not counted)
 *       vs the mean of bare `nsenter -t PID -n nc -z -w 1 127.0.0.1 8080` of the same containers,
 *       spawned by this script one after the other right after the window while the agent still
 *       probes (same load). Goal <= 1.5x.
 * Cleanup always runs (finally, SIGINT, SIGTERM): the agent is stopped, the services deleted,
 * `podman rm -f` of every container with this registry's agent label, the temp dir removed.
 * Requires `npm run build`, the image (scripts/build-image) and netcat-openbsd.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ChildTracker, cleanUpOnSignals, type Ran } from './lib/children.js';
import { median, r1, r2 } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/agent.js');
const IMAGE = 'localhost/agent-busybox:latest';
const N = Number(process.env.BENCH_HEALTH_N ?? 100);
const WINDOW_S = Number(process.env.BENCH_HEALTH_WINDOW_S ?? 30);
const PARALLELISM = process.env.BENCH_HEALTH_PARALLELISM;
const tag = randomBytes(4).toString('hex');
const prefix = `bench${tag}`;
const services = Array.from({ length: Math.ceil(N / 100) }, (_, i) => `${prefix}${String.fromCharCode(97 + i)}`);
const dir = mkdtempSync(join(tmpdir(), 'agent-bench-health-'));
const db = join(dir, 'agent.db');
const socket = join(dir, 'agent.sock');
const env: NodeJS.ProcessEnv = { ...process.env, AGENT_LOG_LEVEL: 'warn', AGENT_METRICS_LISTEN: '', AGENT_RESYNC: '0 0 0 1 1 *' };
const HZ = 100; // USER_HZ on Linux

const log = (msg: string): void => void process.stderr.write(`health bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const children = new ChildTracker({ cwd: ROOT, env });
const must = (cmd: string, args: string[], timeoutMs = 600_000): Promise<Ran> => children.must(cmd, args, timeoutMs);
const config = join(dir, 'agent.toml');
const agent = (args: string[]): Promise<Ran> => must(process.execPath, [BIN, '--config', config, '--db', db, ...args]);

function manifest(name: string, count: number): string {
  let out = `name = "${name}"\nruntime = "container"\n`;
  for (let i = 0; i < count; i++) {
    out += `\n[[components]]\nname = "c${i}"\nimage = "${IMAGE}"\ncmd = ["httpd", "-f", "-p", "8080", "-h", "/"]\n`;
    out += '[components.health]\nkind = "tcp"\nport = 8080\ninterval_seconds = 1\ntimeout_seconds = 1\n';
  }
  return out;
}

/** utime+stime and cutime+cstime of a pid, in ticks. */
function cpuTicks(pid: number): { own: number; reaped: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
}

/** Per live child of `pid` (the tcp probe shells in the containers' namespaces): all its CPU, its reaped nc's included. */
function childTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Only the probe shells: the agent's other children (its podman API service) are not probes.
      if (Number(f[1]) === pid && stat.includes('(sh)')) out.set(Number(p), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function metrics(): Promise<{ sum: number; count: number }> {
  const r = await must('curl', ['-s', '--max-time', '10', '--unix-socket', socket, 'http://agent/metrics']);
  const val = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
  return { sum: val('mcp_agent_health_probe_seconds_sum'), count: val('mcp_agent_health_probe_seconds_count') };
}

function timed(cmd: string, args: string[]): Promise<{ ms: number; code: number | null }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('close', (code) => resolve({ ms: performance.now() - t0, code }));
    c.on('error', () => resolve({ ms: performance.now() - t0, code: null }));
  });
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await children.endAll(15_000);
    let agentId: string | undefined;
    try {
      const d = new Database(db, { readonly: true, fileMustExist: true });
      agentId = (d.prepare("SELECT value FROM meta WHERE key = 'agent_id'").get() as { value: string } | undefined)?.value;
      d.close();
    } catch {
      agentId = undefined;
    }
    if (agentId) {
      const ids = (await must('podman', ['ps', '-a', '-q', '--filter', `label=io.mcp-agent.agent=${agentId}`])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await must('podman', ['rm', '--force', '--time', '0', ...ids]);
      const left = (await must('podman', ['ps', '-a', '-q', '--filter', `label=io.mcp-agent.agent=${agentId}`])).stdout.trim();
      log(`cleanup: removed ${ids.length} containers, ${left ? 'SOME LEFT' : 'none left'}`);
    }
    rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}

async function main(): Promise<void> {
  cleanUpOnSignals(log, cleanup);
  writeFileSync(config, PARALLELISM ? `[health]\nparallelism = ${Number(PARALLELISM)}\n` : '');
  for (const [i, s] of services.entries()) {
    const file = join(dir, `${s}.toml`);
    writeFileSync(file, manifest(s, Math.min(100, N - i * 100)));
    await agent(['apply', '-f', file]);
  }
  let t0 = performance.now();
  await agent(['run', '--once']);
  log(`${N} containers started in ${r1((performance.now() - t0) / 1000)} s`);
  const run = spawn(process.execPath, [BIN, '--config', config, '--db', db, 'run'], { cwd: ROOT, env, stdio: 'ignore' });
  children.track(run);
  const pid = run.pid!;
  t0 = performance.now();
  for (;;) {
    await sleep(1000);
    const r = await agent(['status', '--json']).catch(() => undefined);
    const rows = r ? (JSON.parse(r.stdout) as { components: Array<{ health: string | null }> }).components : [];
    const healthy = rows.filter((c) => c.health === 'healthy').length;
    if (healthy === N) break;
    if (performance.now() - t0 > 300_000) throw new Error(`only ${healthy} of ${N} healthy after 300 s`);
  }
  log(`all ${N} healthy ${r1((performance.now() - t0) / 1000)} s after the agent started; warm-up 5 s, window ${WINDOW_S} s`);
  await sleep(5000);
  const m0 = await metrics();
  const c0 = cpuTicks(pid);
  const k0 = childTicks(pid);
  const w0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const c1 = cpuTicks(pid);
  const k1 = childTicks(pid);
  let shells = 0;
  for (const [p, t] of k1) if (k0.has(p)) shells += t - k0.get(p)!;
  const secs = (performance.now() - w0) / 1000;
  const m1 = await metrics();
  const probes = m1.count - m0.count;
  const agentMs = ((m1.sum - m0.sum) / probes) * 1000;

  // The bare baseline: the same tool through the same namespace, one after the other, same load.
  const ids = (await must('podman', ['ps', '-q', '--filter', `name=^${prefix}`])).stdout.split('\n').filter(Boolean);
  const pids = (await must('podman', ['inspect', '--format', '{{.State.Pid}}', ...ids])).stdout.split('\n').filter(Boolean);
  const bare: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (const p of pids) {
      const r = await timed('nsenter', ['-t', p, '-n', '--', 'nc', '-z', '-w', '1', '127.0.0.1', '8080']);
      if (r.code !== 0) throw new Error(`bare nc -z in the namespace of pid ${p} failed (${r.code})`);
      bare.push(r.ms);
    }
  }
  const bareMean = bare.reduce((a, b) => a + b, 0) / bare.length;
  const own = ((c1.own - c0.own) / HZ / secs) * 100;
  const reaped = ((c1.reaped - c0.reaped) / HZ / secs) * 100;
  const rows: Array<[string, string, string]> = [
    ['containers under tcp checks every 1 s', String(N), `health.parallelism ${PARALLELISM ?? 8}`],
    ['probes per second (agent)', String(r1(probes / secs)), `expected ~${N}`],
    ['(a) agent CPU, % of one core', `${r1(own)}%`, 'goal < 5%'],
    ['    probe commands it reaped (nsenter, nc, curl), % of one core', `${r1(reaped)}%`, ''],
    ['    its probe shells in the namespaces (and their nc), % of one core', `${r1((shells / HZ / secs) * 100)}%`, `${k1.size} shells`],
    ['(b) agent probe, mean ms', String(r2(agentMs)), ''],
    ['    bare nsenter + nc -z, mean ms (median)', `${r2(bareMean)} (${r2(median(bare))})`, `${bare.length} runs`],
    ['    ratio agent / bare (means)', `${r2(agentMs / bareMean)}x`, 'goal <= 1.5x'],
  ];
  for (const [k, v, note] of rows) process.stdout.write(`${k.padEnd(60)} ${v.padStart(12)}  ${note}\n`);
}

main()
  .catch((err: Error) => {
    log(`failed: ${err.message}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
