/**
 * Benchmark (not a test): `agent status --json` against the podman listing it is built on, with
 * 200 real containers.
 *
 *   node --import tsx bench/status.bench.ts        (env: BENCH_STATUS_ROUNDS, default 10)
 *
 * Setup: a temp dir and registry, two services bench<random>a and bench<random>b of 100
 * components each (a service holds at most 100) running `sleep 2147483647` on
 * localhost/agent-busybox:latest, applied with the CLI and started with `agent run --once`.
 * Then, interleaved over N rounds (order rotated each round, after discarded warm-up rounds),
 * wall time of:
 *   - node:     `node -e 0`                          bare Node startup (baseline)
 *   - cli:      `agent --db DB events -n 1 --json`   the CLI loading its modules and opening the
 *                                                    registry, no podman (breakdown)
 *   - podman:   `podman ps -a --format json --filter label=io.mcp-agent.agent=<id>`
 *   - status:   `agent --db DB status --json`
 * Reports medians, min, and the ratios status/podman and (status - node)/podman.
 * Cleanup always runs (finally, SIGINT, SIGTERM): delete both services, `podman rm -f` every
 * container carrying this registry's agent label (or our name prefix), remove the temp dir, and
 * check that podman lists none of them. Requires dist/ (npm run build) and the image.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ChildTracker, cleanUpOnSignals, type Ran } from './lib/children.js';
import Database from 'better-sqlite3';
import { median, r1, r2 } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/agent.js');
const IMAGE = 'localhost/agent-busybox:latest';
const LABEL_AGENT = 'io.mcp-agent.agent';
const ROUNDS = Number(process.env.BENCH_STATUS_ROUNDS ?? 10);
const WARMUP_ROUNDS = 2;
const PER_SERVICE = 100;
const SERVICES = 2;
const TOTAL = PER_SERVICE * SERVICES;

const tag = randomBytes(4).toString('hex');
const prefix = `bench${tag}`;
const serviceNames = Array.from({ length: SERVICES }, (_, i) => `${prefix}${String.fromCharCode(97 + i)}`);
const dir = mkdtempSync(join(tmpdir(), 'agent-bench-status-'));
const db = join(dir, 'agent.db');
const childEnv: NodeJS.ProcessEnv = { ...process.env, AGENT_LOG_LEVEL: 'warn' };

const log = (msg: string): void => void process.stderr.write(`status bench: ${msg}\n`);

// ---- child processes (tracked, so an interrupt can end them by pid) ----

const children = new ChildTracker({ cwd: ROOT, env: childEnv });
const run = (cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Ran> => children.run(cmd, args, opts);
const must = (cmd: string, args: string[], timeoutMs = 120_000): Promise<Ran> => children.must(cmd, args, timeoutMs);
const agent = (args: string[], timeoutMs?: number): Promise<Ran> => must(process.execPath, [BIN, '--db', db, ...args], timeoutMs);
const endChildren = (): Promise<void> => children.endAll(10_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- podman --------------------------------------------------------------------------------

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
  const r = await must('podman', ['ps', '-a', '--format', 'json']);
  const all = JSON.parse(r.stdout || '[]') as PsEntry[];
  return all.filter((c) => (agentId !== undefined && c.Labels?.[LABEL_AGENT] === agentId) || (c.Names ?? []).some((n) => n.startsWith(`${prefix}`)));
}

// ---- cleanup -------------------------------------------------------------------------------

let cleaning: Promise<boolean> | undefined;

/** Idempotent; resolves true when podman shows none of our containers afterwards. */
function cleanup(): Promise<boolean> {
  cleaning ??= (async () => {
    log('cleanup: starting');
    await endChildren();
    const agentId = agentIdOf(db);
    if (agentId) {
      for (const s of serviceNames) {
        const r = await run(process.execPath, [BIN, '--db', db, 'delete', s], { timeoutMs: 30_000 }).catch((e: Error) => ({ code: -1, stderr: e.message }) as Ran);
        if (r.code !== 0 && !/no service named/.test(r.stderr)) log(`cleanup: delete ${s}: ${r.stderr.trim()}`);
      }
    }
    // Direct removal: podman rm -f of everything labelled with this registry's agent id (or
    // named with our prefix). Repeated until two empty checks in a row, in case a podman run
    // interrupted mid-way still creates its container after the first sweep.
    let ok = false;
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
      const t0 = performance.now();
      const r = await run('podman', ['rm', '--force', '--time', '0', ...left.map((c) => c.Id)], { timeoutMs: 300_000 });
      log(`cleanup: podman rm -f ${left.length} containers: exit ${r.code} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    ok = emptyChecks >= 2;
    rmSync(dir, { recursive: true, force: true });
    // Final verification, as podman sees it now.
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


// ---- the benchmark -------------------------------------------------------------------------

type Probe = 'node' | 'cli' | 'podman' | 'status';

async function bench(): Promise<void> {
  log(`temp dir ${dir}, services ${serviceNames.join(', ')}`);
  const tSetup = performance.now();
  for (const s of serviceNames) {
    const manifest = {
      name: s,
      runtime: 'container',
      comment: 'status benchmark; removed when the benchmark ends',
      components: Array.from({ length: PER_SERVICE }, (_, i) => ({ name: `c${String(i).padStart(3, '0')}`, image: IMAGE, cmd: ['sleep', '2147483647'] })),
    };
    const file = join(dir, `${s}.json`);
    writeFileSync(file, JSON.stringify(manifest, null, 2));
    await agent(['apply', '-f', file]);
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
  const startSeconds = (performance.now() - tRun) / 1000;
  if (signals.interrupted) return;
  if (running !== TOTAL) throw new Error(`only ${running} of ${TOTAL} containers are running after agent run --once`);
  const setupSeconds = (performance.now() - tSetup) / 1000;

  const probes: Record<Probe, () => Promise<Ran>> = {
    node: () => must(process.execPath, ['-e', '0']),
    cli: () => agent(['events', '-n', '1', '--json']),
    podman: () => must('podman', ['ps', '-a', '--format', 'json', '--filter', `label=${LABEL_AGENT}=${agentId}`]),
    status: () => agent(['status', '--json']),
  };
  const names = Object.keys(probes) as Probe[];
  const samples: Record<Probe, number[]> = { node: [], cli: [], podman: [], status: [] };
  const paired: number[] = [];
  let statusBytes = 0;
  let podmanBytes = 0;

  for (let round = -WARMUP_ROUNDS; round < ROUNDS; round++) {
    if (signals.interrupted) return;
    const order = names.map((_, i) => names[(i + Math.max(round, 0)) % names.length]!);
    const got: Partial<Record<Probe, number>> = {};
    for (const p of order) {
      const r = await probes[p]();
      got[p] = r.ms;
      // Sanity (outside the timed region): the figures are of the real 200-container answer.
      if (p === 'status') {
        const rep = JSON.parse(r.stdout) as { summary: Record<string, number>; components: unknown[] };
        if (rep.components.length !== TOTAL || rep.summary['in-sync'] !== TOTAL) throw new Error(`status is not ${TOTAL} x in-sync: ${JSON.stringify(rep.summary)}`);
        statusBytes = r.stdout.length;
      } else if (p === 'podman') {
        const n = (JSON.parse(r.stdout) as unknown[]).length;
        if (n !== TOTAL) throw new Error(`podman ps listed ${n} containers, expected ${TOTAL}`);
        podmanBytes = r.stdout.length;
      }
    }
    if (round < 0) {
      log(`warm-up round ${round + WARMUP_ROUNDS + 1}/${WARMUP_ROUNDS} done`);
      continue;
    }
    for (const p of names) samples[p].push(got[p]!);
    paired.push(got.status! / got.podman!);
    log(`round ${round + 1}/${ROUNDS}: ${order.map((p) => `${p} ${got[p]!.toFixed(0)} ms`).join(', ')}`);
  }

  const med = Object.fromEntries(names.map((p) => [p, median(samples[p])])) as Record<Probe, number>;
  const mins = Object.fromEntries(names.map((p) => [p, Math.min(...samples[p])])) as Record<Probe, number>;
  const ratios = {
    status_over_podman_ps: r2(med.status / med.podman),
    status_minus_node_over_podman_ps: r2((med.status - med.node) / med.podman),
    status_over_podman_ps_paired_median: r2(median(paired)),
    cli_minus_node_ms: r1(med.cli - med.node),
    status_minus_cli_minus_podman_ms: r1(med.status - med.cli - med.podman),
  };

  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  const label: Record<Probe, string> = {
    node: 'node -e 0 (baseline)',
    cli: 'agent events -n 1 --json',
    podman: 'podman ps -a --format json',
    status: 'agent status --json',
  };
  console.log(`status benchmark: ${TOTAL} running containers, ${ROUNDS} interleaved rounds after ${WARMUP_ROUNDS} warm-up rounds, wall ms per command (node ${process.version})`);
  console.log(`setup ${setupSeconds.toFixed(1)} s (agent run --once started ${TOTAL} containers in ${startSeconds.toFixed(1)} s); status --json ${statusBytes} bytes, podman ps json ${podmanBytes} bytes`);
  console.log(`${'command'.padEnd(28)} ${pad('median', 8)} ${pad('min', 8)} ${pad('max', 8)}`);
  for (const p of names) console.log(`${label[p].padEnd(28)} ${pad(med[p].toFixed(1), 8)} ${pad(mins[p].toFixed(1), 8)} ${pad(Math.max(...samples[p]).toFixed(1), 8)}`);
  console.log(`status / podman ps                 ${ratios.status_over_podman_ps.toFixed(2)}   (median of per-round ratios ${ratios.status_over_podman_ps_paired_median.toFixed(2)})`);
  console.log(`(status - node startup) / podman ps ${ratios.status_minus_node_over_podman_ps.toFixed(2)}`);
  console.log(`cli load + open registry - node    ${ratios.cli_minus_node_ms.toFixed(1)} ms;  status - cli - podman ps ${ratios.status_minus_cli_minus_podman_ms.toFixed(1)} ms (plan + status assembly + JSON)`);
  console.log(
    JSON.stringify({
      bench: 'status',
      node: process.version,
      containers: TOTAL,
      rounds: ROUNDS,
      warmup_rounds: WARMUP_ROUNDS,
      setup_s: r1(setupSeconds),
      run_once_start_s: r1(startSeconds),
      status_json_bytes: statusBytes,
      podman_ps_json_bytes: podmanBytes,
      median_ms: Object.fromEntries(names.map((p) => [p, r1(med[p])])),
      min_ms: Object.fromEntries(names.map((p) => [p, r1(mins[p])])),
      samples_ms: Object.fromEntries(names.map((p) => [p, samples[p].map(r1)])),
      ...ratios,
    }),
  );
}

let failed = false;
try {
  await bench();
} catch (err) {
  failed = true;
  process.stderr.write(`status bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  const clean = await cleanup();
  if (!clean) {
    process.stderr.write(`status bench: CLEANUP INCOMPLETE: check podman ps -a --filter label=${LABEL_AGENT} and names ${prefix}-*\n`);
    failed = true;
  }
}
if (failed) process.exitCode = 1;
