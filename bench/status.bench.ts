/**
 * Benchmark (not a test): how fast the CLI answers, as ratios against baselines timed in the same
 * run, with 200 real containers.
 *
 *   npm run bench:status        (env: BENCH_STATUS_ROUNDS, default 20: single commands on this
 *                               noisy machine vary by ±30%, and a median of 10 moved the ratios by ±0.1)
 *
 * Setup: a temp dir and registry, two services bench<random>a and bench<random>b of 100
 * components each (a service holds at most 100) running `sleep 2147483647` on
 * localhost/agent-busybox:latest, applied with the CLI and started with `agent run --once`.
 * Then two phases, each of N rounds (after warm-up rounds), the probes interleaved and their order
 * rotated each round, wall time of each command from spawn to exit:
 *   no agent:   node -e 0 | agent events -n 1 --json | podman ps -a --format json --filter
 *               label=io.mcp-agent.agent=<id> | agent status --json
 *   agent runs: (`agent run` in the background, its API on <dir>/agent.sock) node -e 0 |
 *               podman ps (same) | agent status --json
 * Cases, each the ratio of medians (and the median of per-round ratios):
 *   (a) `agent events -n 1 --json` / `node -e 0`: the CLI starting and opening the registry
 *       (settings, SQLite, one query), no runtime asked. Goal <= 1.5.
 *   (b) `agent status --json` with the agent running / podman ps. Goal <= 1.0 (stretch 0.8).
 *       Printed as n/a when the agent serves no <dir>/agent.sock (no local API in this build).
 *   (c) `agent status --json` without an agent / podman ps. Goal <= 2.0.
 * Cleanup always runs (finally, SIGINT, SIGTERM): the agent is stopped, both services deleted,
 * `podman rm -f` of every container carrying this registry's agent label (or our name prefix), the
 * temp dir removed, and podman asked again that none is left. Requires `npm run build` and the image.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
const LABEL_AGENT = 'io.mcp-agent.agent';
const ROUNDS = Number(process.env.BENCH_STATUS_ROUNDS ?? 20);
const WARMUP_ROUNDS = 2;
const PER_SERVICE = 100;
const SERVICES = 2;
const TOTAL = PER_SERVICE * SERVICES;

const tag = randomBytes(4).toString('hex');
const prefix = `bench${tag}`;
const serviceNames = Array.from({ length: SERVICES }, (_, i) => `${prefix}${String.fromCharCode(97 + i)}`);
const dir = mkdtempSync(join(tmpdir(), 'agent-bench-status-'));
const db = join(dir, 'agent.db');
const socket = join(dir, 'agent.sock');
// No TCP metrics listener: other agents on this machine may hold the default port.
const childEnv: NodeJS.ProcessEnv = { ...process.env, AGENT_LOG_LEVEL: 'warn', AGENT_METRICS_LISTEN: '' };

const log = (msg: string): void => void process.stderr.write(`status bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const children = new ChildTracker({ cwd: ROOT, env: childEnv });
const run = (cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Ran> => children.run(cmd, args, opts);
const must = (cmd: string, args: string[], timeoutMs = 120_000): Promise<Ran> => children.must(cmd, args, timeoutMs);
const agent = (args: string[], timeoutMs?: number): Promise<Ran> => must(process.execPath, [BIN, '--db', db, ...args], timeoutMs);

function agentIdOf(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const d = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return (d.prepare("SELECT value FROM meta WHERE key = 'agent_id'").get() as { value: string } | undefined)?.value;
    } finally {
      d.close();
    }
  } catch {
    return undefined;
  }
}

interface PsEntry {
  Id: string;
  Names: string[] | null;
  State: string;
  Labels: Record<string, string> | null;
}

/** Every container (ours or not) that carries our agent label or our name prefix. */
async function ourContainers(agentId: string | undefined): Promise<PsEntry[]> {
  const all = JSON.parse((await must('podman', ['ps', '-a', '--format', 'json'])).stdout || '[]') as PsEntry[];
  return all.filter((c) => (agentId !== undefined && c.Labels?.[LABEL_AGENT] === agentId) || (c.Names ?? []).some((n) => n.startsWith(prefix)));
}

let cleaning: Promise<boolean> | undefined;

/** Idempotent; resolves true when podman shows none of our containers afterwards. */
function cleanup(): Promise<boolean> {
  cleaning ??= (async () => {
    log('cleanup: starting');
    await children.endAll(15_000);
    const agentId = agentIdOf(db);
    if (agentId) {
      for (const s of serviceNames) {
        const r = await run(process.execPath, [BIN, '--db', db, 'delete', s], { timeoutMs: 30_000 }).catch((e: Error) => ({ code: -1, stderr: e.message }) as Ran);
        if (r.code !== 0 && !/no service named/.test(r.stderr)) log(`cleanup: delete ${s}: ${r.stderr.trim()}`);
      }
    }
    // podman rm -f of everything labelled with this registry's agent id (or named with our
    // prefix), until two empty checks in a row: a podman run cut short may still create its container.
    let emptyChecks = 0;
    for (let attempt = 0; attempt < 10 && emptyChecks < 2; attempt++) {
      let left: PsEntry[];
      try {
        left = await ourContainers(agentId);
      } catch (err) {
        log(`cleanup: podman ps failed: ${(err as Error).message}`);
        await sleep(1000);
        continue;
      }
      if (left.length === 0) {
        emptyChecks++;
        if (emptyChecks < 2) await sleep(500);
        continue;
      }
      emptyChecks = 0;
      const r = await run('podman', ['rm', '--force', '--time', '0', ...left.map((c) => c.Id)], { timeoutMs: 300_000 });
      log(`cleanup: podman rm -f ${left.length} containers: exit ${r.code} in ${(r.ms / 1000).toFixed(1)} s`);
    }
    let ok = emptyChecks >= 2;
    rmSync(dir, { recursive: true, force: true });
    try {
      const left = await ourContainers(agentId);
      ok = ok && left.length === 0;
      log(`cleanup: podman ps -a shows ${left.length} of our containers (label ${LABEL_AGENT}=${agentId ?? '?'}, prefix ${prefix}); temp dir ${existsSync(dir) ? 'STILL PRESENT' : 'removed'}`);
    } catch (err) {
      ok = false;
      log(`cleanup: final podman ps failed: ${(err as Error).message}`);
    }
    return ok;
  })();
  return cleaning;
}

const signals = cleanUpOnSignals(log, cleanup);

type Probe = 'node' | 'cli' | 'podman' | 'status';
type Samples = Partial<Record<Probe, number[]>>;

/** Status output checked outside the timed region: the figures are of the real 200-row answer. */
function checkStatus(stdout: string): void {
  const rep = JSON.parse(stdout) as { summary: Record<string, number>; components: unknown[] };
  if (rep.components.length !== TOTAL || rep.summary['in-sync'] !== TOTAL) throw new Error(`status is not ${TOTAL} x in-sync: ${JSON.stringify(rep.summary)}`);
}

/** N interleaved rounds of `probes` (order rotated each round) after the warm-up rounds. */
async function rounds(phase: string, probes: Partial<Record<Probe, () => Promise<Ran>>>): Promise<Samples> {
  const names = Object.keys(probes) as Probe[];
  const samples: Samples = Object.fromEntries(names.map((p) => [p, []]));
  for (let round = -WARMUP_ROUNDS; round < ROUNDS && !signals.interrupted; round++) {
    const order = names.map((_, i) => names[(i + Math.max(round, 0)) % names.length]!);
    const got: Partial<Record<Probe, number>> = {};
    for (const p of order) {
      const r = await probes[p]!();
      got[p] = r.ms;
      if (p === 'status') checkStatus(r.stdout);
      if (p === 'podman' && (JSON.parse(r.stdout) as unknown[]).length !== TOTAL) throw new Error(`podman ps did not list ${TOTAL} containers`);
    }
    if (round < 0) continue;
    for (const p of names) samples[p]!.push(got[p]!);
    log(`${phase} round ${round + 1}/${ROUNDS}: ${order.map((p) => `${p} ${got[p]!.toFixed(0)} ms`).join(', ')}`);
  }
  return samples;
}

/** Starts `agent run` in the background; true once its API socket exists. */
async function startAgent(): Promise<boolean> {
  const out = openSync(join(dir, 'agent.log'), 'a');
  const child = spawn(process.execPath, [BIN, '--db', db, 'run'], { cwd: ROOT, env: childEnv, stdio: ['ignore', out, out] });
  children.track(child);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    // The socket comes before the agent's first listing: until that, its status says `unknown`.
    if (existsSync(socket) && statSync(socket).isSocket()) {
      const r = await agent(['status', '--json']).catch(() => undefined);
      if (r && (JSON.parse(r.stdout) as { summary: Record<string, number> }).summary['in-sync'] === TOTAL) return true;
    }
    await sleep(100);
  }
  if (child.exitCode !== null) throw new Error(`agent run exited ${child.exitCode}: see ${join(dir, 'agent.log')}`);
  return false;
}

async function setUp(): Promise<{ agentId: string; setupS: number; startS: number }> {
  const t0 = performance.now();
  for (const s of serviceNames) {
    const manifest = {
      name: s,
      runtime: 'container',
      comment: 'status benchmark; removed when the benchmark ends',
      components: Array.from({ length: PER_SERVICE }, (_, i) => ({ name: `c${String(i).padStart(3, '0')}`, image: IMAGE, cmd: ['sleep', '2147483647'] })),
    };
    writeFileSync(join(dir, `${s}.json`), JSON.stringify(manifest));
    await agent(['apply', '-f', join(dir, `${s}.json`)]);
  }
  const agentId = agentIdOf(db);
  if (!agentId) throw new Error(`no agent_id in ${db}`);
  log(`agent id ${agentId}; starting ${TOTAL} containers with agent run --once...`);
  const tRun = performance.now();
  let running = 0;
  for (let pass = 1; pass <= 3 && running < TOTAL && !signals.interrupted; pass++) {
    const r = await run(process.execPath, [BIN, '--db', db, 'run', '--once'], { timeoutMs: 20 * 60_000 });
    const ps = JSON.parse((await must('podman', ['ps', '-a', '--format', 'json', '--filter', `label=${LABEL_AGENT}=${agentId}`])).stdout || '[]') as PsEntry[];
    running = ps.filter((c) => c.State === 'running').length;
    log(`run --once pass ${pass}: exit ${r.code ?? r.signal} in ${(r.ms / 1000).toFixed(1)} s; ${running}/${TOTAL} running${r.code !== 0 ? `\n${r.stderr.slice(-2000)}` : ''}`);
  }
  if (running !== TOTAL && !signals.interrupted) throw new Error(`only ${running} of ${TOTAL} containers are running after agent run --once`);
  return { agentId, setupS: (performance.now() - t0) / 1000, startS: (performance.now() - tRun) / 1000 };
}

interface Case {
  id: string;
  what: string;
  probe: Probe;
  base: Probe;
  samples: Samples | undefined;
  goal: string;
}

function report(cases: Case[], meta: Record<string, unknown>): void {
  const med = (c: Case, p: Probe): number => median(c.samples![p]!);
  const paired = (c: Case): number => median(c.samples![c.probe]!.map((x, i) => x / c.samples![c.base]![i]!));
  const fmt = (x: number): string => x.toFixed(1).padStart(9);
  console.log(`status benchmark: ${TOTAL} running containers, ${ROUNDS} interleaved rounds after ${WARMUP_ROUNDS} warm-up rounds per phase, wall ms per command (node ${process.version})`);
  console.log(`${'case'.padEnd(58)} ${'median'.padStart(9)} ${'baseline'.padStart(9)} ${'ratio'.padStart(6)} ${'paired'.padStart(6)}  goal`);
  for (const c of cases) {
    if (!c.samples) {
      console.log(`${`(${c.id}) ${c.what}`.padEnd(58)} ${'n/a (no agent API)'.padStart(33)}  ${c.goal}`);
      continue;
    }
    console.log(`${`(${c.id}) ${c.what}`.padEnd(58)} ${fmt(med(c, c.probe))} ${fmt(med(c, c.base))} ${(med(c, c.probe) / med(c, c.base)).toFixed(2).padStart(6)} ${paired(c).toFixed(2).padStart(6)}  ${c.goal}`);
  }
  const phases = new Map(cases.filter((c) => c.samples).map((c) => [c.samples!, c.id]));
  console.log(`\n${'raw (phase: probe)'.padEnd(40)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}`);
  for (const [s, id] of phases) {
    for (const [p, xs] of Object.entries(s)) console.log(`${`${id === 'b' ? 'agent runs' : 'no agent'}: ${p}`.padEnd(40)} ${fmt(median(xs))} ${fmt(Math.min(...xs))} ${fmt(Math.max(...xs))}`);
  }
  const ratios = Object.fromEntries(cases.map((c) => [`case_${c.id}`, c.samples ? { ratio: r2(med(c, c.probe) / med(c, c.base)), paired: r2(paired(c)), median_ms: r1(med(c, c.probe)), baseline_ms: r1(med(c, c.base)) } : null]));
  const raw = Object.fromEntries([...phases].map(([s, id]) => [id === 'b' ? 'agent' : 'no_agent', Object.fromEntries(Object.entries(s).map(([p, xs]) => [p, xs.map(r1)]))]));
  console.log(JSON.stringify({ bench: 'status', node: process.version, containers: TOTAL, rounds: ROUNDS, warmup_rounds: WARMUP_ROUNDS, ...meta, ...ratios, samples_ms: raw }));
}

async function bench(): Promise<void> {
  const bundle = join(ROOT, 'dist/bundle/agent.cjs');
  if (!existsSync(bundle) || statSync(bundle).mtimeMs < statSync(join(ROOT, 'dist/cli/main.js')).mtimeMs) throw new Error('the CLI bundle is missing or older than dist/: run npm run build');
  log(`temp dir ${dir}, services ${serviceNames.join(', ')}`);
  const { agentId, setupS, startS } = await setUp();
  if (signals.interrupted) return;
  const node = (): Promise<Ran> => must(process.execPath, ['-e', '0']);
  const podman = (): Promise<Ran> => must('podman', ['ps', '-a', '--format', 'json', '--filter', `label=${LABEL_AGENT}=${agentId}`]);
  const status = (): Promise<Ran> => agent(['status', '--json']);

  const noAgent = await rounds('no agent', { node, cli: () => agent(['events', '-n', '1', '--json']), podman, status });
  log('starting agent run in the background...');
  const api = await startAgent();
  if (!api) log(`no ${socket} answering ${TOTAL} x in-sync 60 s after agent run started: case (b) is n/a`);
  const withAgent = api && !signals.interrupted ? await rounds('agent runs', { node, podman, status }) : undefined;
  if (signals.interrupted) return;

  report(
    [
      { id: 'a', what: 'agent events -n 1 --json / node -e 0', probe: 'cli', base: 'node', samples: noAgent, goal: '<= 1.5' },
      { id: 'b', what: 'agent status --json, agent running / podman ps', probe: 'status', base: 'podman', samples: withAgent, goal: '<= 1.0 (stretch 0.8)' },
      { id: 'c', what: 'agent status --json, no agent / podman ps', probe: 'status', base: 'podman', samples: noAgent, goal: '<= 2.0' },
    ],
    { setup_s: r1(setupS), run_once_start_s: r1(startS) },
  );
}

let failed = false;
try {
  await bench();
} catch (err) {
  failed = true;
  process.stderr.write(`status bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  if (!(await cleanup())) {
    process.stderr.write(`status bench: CLEANUP INCOMPLETE: check podman ps -a --filter label=${LABEL_AGENT} and names ${prefix}-*\n`);
    failed = true;
  }
}
if (failed) process.exitCode = 1;
