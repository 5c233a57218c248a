/**
 * Benchmark (not a test): how fast a running `agent run` reacts, measured from outside the agent
 * (podman's own event timestamps, /proc, a real SSH client), each reaction against its bare limit
 * in the same run, interleaved (order alternating each round, after one discarded warm-up round).
 *
 *   node --import tsx bench/reaction.bench.ts [--json]
 *   env: BENCH_REACTION_ROUNDS (5), BENCH_REACTION_ONLY (containers,backoff,vm,idle),
 *        BENCH_REACTION_IDLE_CONTAINERS (50), BENCH_REACTION_IDLE_VMS (5), BENCH_REACTION_IDLE_SECONDS (30),
 *        BENCH_REACTION_BACKOFF_MAX_MS (4000), BENCH_REACTION_SSH_PROBE_MS (20), BENCH_REACTION_JSON (file)
 *
 * - kill:     `podman kill` of an agent's container; its `died` event -> the restart's `start` event.
 *             Bare: `podman start` of a killed container of ours issued -> its `start` event.
 *             One component per round (a restart counts as a failure: a second kill would meet the backoff).
 * - commit:   a master's commit (sqlite3 CLI: a new service with one container) done -> `start`.
 *             Bare: `podman run -d` with the agent's flags issued -> `start`.
 * - backoff:  a component that exits at once (restart always): lateness = the retry's `start`
 *             event - `next_attempt_at` in the instances table (read at the `died` before it).
 * - vm-kill:  `kill -9` of a VM's QEMU -> a new QEMU with the VM's `-name guest=...` in /proc (1 ms poll).
 * - vm-boot:  a master's commit of a kernel-boot VM (SLIRP, TCG) -> SSH answers with the pinned key.
 *             Bare: qemu-system spawned with the agent's own argument list (paths and port moved) ->
 *             the same probe loop sees SSH ready.
 * - idle:     the agent's CPU (utime+stime, reaped children, live helpers) over a window, with
 *             N containers and M VMs converged.
 * Requires dist/ (npm run build), the guest image in var/images (scripts/build-guest), podman, QEMU.
 * Cleanup always runs (finally, SIGINT, SIGTERM): see ReactionNode.cleanup.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildTracker, cleanUpOnSignals } from './lib/children.js';
import { nowMs, PodmanEventTap } from './lib/events.js';
import { qemuPidsWith } from './lib/procfs.js';
import { IMAGE, ReactionNode } from './lib/reaction-node.js';
import { median, r1, r2 } from './lib/stats.js';
import type { VmRecordLite } from './lib/vm.js';
import { vmAgentRound, vmBareRound, type VmAgentRound, type VmContext } from './lib/reaction-vm.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/agent.js');
const GUEST_IMAGES = join(ROOT, 'var/images');
const int = (name: string, dflt: number, min: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name}: ${process.env[name]} is not a whole number >= ${min}`);
  return v;
};
const ROUNDS = int('BENCH_REACTION_ROUNDS', 5, 1);
const WARMUP = 1;
const IDLE_CONTAINERS = int('BENCH_REACTION_IDLE_CONTAINERS', 50, 0);
const IDLE_VMS = int('BENCH_REACTION_IDLE_VMS', 5, 0);
const IDLE_SECONDS = int('BENCH_REACTION_IDLE_SECONDS', 30, 1);
const BACKOFF_MAX_MS = int('BENCH_REACTION_BACKOFF_MAX_MS', 4000, 1000);
const SSH_PROBE_MS = int('BENCH_REACTION_SSH_PROBE_MS', 20, 1);
const PHASES = new Set((process.env.BENCH_REACTION_ONLY ?? 'containers,backoff,vm,idle').split(',').map((s) => s.trim()));
const JSON_OUT = process.argv.includes('--json') ? '-' : process.env.BENCH_REACTION_JSON;
const CLK_TCK = 100;
const SETTLE_MS = 1500;

const tag = randomBytes(3).toString('hex');
const P = `rb${tag}`; // every container and workload name of this run starts with it
const PODMAN_FLAGS = ['--runtime', 'runc', '--init', '--network', 'none', '--pull', 'never', '--restart', 'no', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];
const BARE_LABELS = ['--label', `io.mcp-agent.bench=${tag}`, '--label', 'io.mcp-agent.component=bare/x', '--label', `io.mcp-agent.spec-hash=${'0'.repeat(64)}`];
const SLEEP_CMD = ['sleep', '2147483647'];

const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENT_')));
const log = (msg: string): void => void process.stderr.write(`reaction bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const children = new ChildTracker({ cwd: ROOT, env: childEnv });
const node = new ReactionNode(tag, children, BIN, childEnv, GUEST_IMAGES);
const tap = new PodmanEventTap([P]);
const podman = (args: string[]): Promise<unknown> => children.must('podman', args, 120_000);

let cleaning: Promise<boolean> | undefined;
const cleanup = (): Promise<boolean> => {
  cleaning ??= (async () => {
    tap.stop();
    const ok = await node.cleanup(log);
    await children.endAll(10_000);
    return ok;
  })();
  return cleaning;
};
const signals = cleanUpOnSignals(log, cleanup);
// A crash outside the main flow (an 'error' event nobody handles) must not leave anything behind either.
process.on('uncaughtException', (err) => {
  process.stderr.write(`reaction bench: uncaught: ${err.stack ?? String(err)}\n`);
  void cleanup().finally(() => process.exit(1));
});
const checkInterrupted = (): void => {
  if (signals.interrupted) throw new Error('interrupted');
};

const sqlStr = (s: string): string => `'${s.replaceAll("'", "''")}'`;
const containerSql = (service: string, comps: Record<string, string[]>): string =>
  `INSERT INTO services (name, active) VALUES (${sqlStr(service)}, 1); ` +
  Object.entries(comps).map(([c, cmd]) => `INSERT INTO components (service, name, runtime, image, cmd) VALUES (${sqlStr(service)}, ${sqlStr(c)}, 'container', '${IMAGE}', ${sqlStr(JSON.stringify(cmd))});`).join(' ');
const vmSql = (service: string, comps: string[]): string =>
  `INSERT INTO services (name, active) VALUES (${sqlStr(service)}, 1); ` +
  comps.map((c) => `INSERT INTO components (service, name, runtime, image, memory_mib, network, kernel, initrd) VALUES (${sqlStr(service)}, ${sqlStr(c)}, 'unikernel', '', 128, 'slirp', 'vmlinux', 'initrd.gz');`).join(' ');
const deleteSql = (service: string): string => `DELETE FROM services WHERE name = ${sqlStr(service)};`;

/** Polls `fn` every `everyMs` until it returns a value; throws `what` after `timeoutMs`. */
async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    checkInterrupted();
    node.checkAgent();
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${node.logTail()}`);
    await sleep(everyMs);
  }
}

/** Runs `agentSide` and `bareSide` once per round, order alternating; the first WARMUP rounds discarded. */
async function interleave<A, B>(name: string, agentSide: (i: number) => Promise<A>, bareSide: (i: number) => Promise<B>, bareFirstAllowed = true): Promise<Array<{ a: A; b: B; order: string }>> {
  const out: Array<{ a: A; b: B; order: string }> = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const agentFirst = !bareFirstAllowed || i === 0 || i % 2 === 1;
    let a: A | undefined;
    let b: B | undefined;
    for (const side of agentFirst ? ['agent', 'bare'] : ['bare', 'agent']) {
      checkInterrupted();
      if (side === 'agent') a = await agentSide(i);
      else b = await bareSide(i);
      await sleep(SETTLE_MS);
    }
    if (i < WARMUP) log(`${name}: warm-up round done (discarded)`);
    else out.push({ a: a!, b: b!, order: agentFirst ? 'agent,bare' : 'bare,agent' });
  }
  return out;
}

// ---- containers: kill -> restart, commit -> start -------------------------------------------

interface Pair {
  agent: number;
  bare: number;
  order: string;
}

async function containers(): Promise<{ kill: Pair[]; commit: Pair[]; killToDied: number[] }> {
  const killSvc = `${P}k`;
  const comps = Object.fromEntries(Array.from({ length: WARMUP + ROUNDS }, (_, i) => [`k${i}`, SLEEP_CMD]));
  const t = nowMs();
  await node.commit(containerSql(killSvc, comps));
  for (const c of Object.keys(comps)) await tap.next(`${killSvc}-${c}`, 'start', t - 5, 120_000);
  const bareS = `${P}b-s`;
  await podman(['run', '--detach', '--name', bareS, ...PODMAN_FLAGS, ...BARE_LABELS, IMAGE, ...SLEEP_CMD]);
  await sleep(2 * SETTLE_MS);

  const killToDied: number[] = [];
  const kill = await interleave(
    'kill',
    async (i) => {
      const name = `${killSvc}-k${i}`;
      const t0 = nowMs();
      await podman(['kill', name]);
      const died = await tap.next(name, 'died', t0 - 1);
      const start = await tap.next(name, 'start', died.at);
      killToDied.push(died.at - t0);
      await until(`${name} to be recorded as restarted`, () => node.query<{ restarts: number }>('SELECT restarts FROM instances WHERE workload = ?', name)[0]?.restarts === 1);
      return start.at - died.at;
    },
    async () => {
      const k0 = nowMs();
      await podman(['kill', bareS]);
      await tap.next(bareS, 'died', k0 - 1);
      await sleep(300); // podman's cleanup of the died container, as before the agent's restart
      const t0 = nowMs();
      await podman(['start', bareS]);
      return (await tap.next(bareS, 'start', t0)).at - t0;
    },
  );
  killToDied.splice(0, WARMUP);

  const commit = await interleave(
    'commit',
    async (i) => {
      const svc = `${P}c${i}`;
      const c = await node.commit(containerSql(svc, { x: SLEEP_CMD }));
      const start = await tap.next(`${svc}-x`, 'start', c.spawnedAt);
      await sleep(SETTLE_MS);
      const r0 = nowMs();
      await node.commit(deleteSql(svc));
      await tap.next(`${svc}-x`, 'remove', r0);
      return start.at - c.doneAt;
    },
    async (i) => {
      const name = `${P}b-r${i}`;
      const t0 = nowMs();
      await podman(['run', '--detach', '--name', name, ...PODMAN_FLAGS, ...BARE_LABELS, IMAGE, ...SLEEP_CMD]);
      const start = await tap.next(name, 'start', t0);
      await podman(['rm', '--force', '--time', '0', name]);
      return start.at - t0;
    },
  );
  await podman(['rm', '--force', '--time', '0', bareS]);
  const r0 = nowMs();
  await node.commit(deleteSql(killSvc));
  for (const c of Object.keys(comps)) await tap.next(`${killSvc}-${c}`, 'remove', r0, 120_000);
  const pairs = (xs: Array<{ a: number; b: number; order: string }>): Pair[] => xs.map((x) => ({ agent: x.a, bare: x.b, order: x.order }));
  return { kill: pairs(kill), commit: pairs(commit), killToDied };
}

// ---- backoff: next_attempt_at -> the retry's start ------------------------------------------

interface Retry {
  failures: number;
  nextAttemptAt: string;
  startAt: number;
  latenessMs: number;
}

async function backoff(): Promise<Retry[]> {
  const svc = `${P}l`;
  const name = `${svc}-x`;
  const c = await node.commit(containerSql(svc, { x: ['false'] }));
  const out: Retry[] = [];
  // The first restart follows at once (no failure recorded yet); each one after waits for its backoff.
  let start = await tap.next(name, 'start', c.spawnedAt, 60_000);
  while (out.length < ROUNDS) {
    checkInterrupted();
    const died = await tap.next(name, 'died', start.at, 60_000);
    // Written by the restart that produced `start`, before it: when the next retry is due.
    const rec = node.query<{ failures: number; next_attempt_at: string | null }>('SELECT failures, next_attempt_at FROM instances WHERE workload = ?', name)[0];
    const next = await tap.next(name, 'start', died.at, 120_000 + BACKOFF_MAX_MS);
    if (rec?.next_attempt_at && Date.parse(rec.next_attempt_at) > died.at) {
      const r = { failures: rec.failures, nextAttemptAt: rec.next_attempt_at, startAt: next.at, latenessMs: next.at - Date.parse(rec.next_attempt_at) };
      log(`backoff: failure ${r.failures}, retry due ${r.nextAttemptAt}, started ${r1(r.latenessMs)} ms after`);
      out.push(r);
    }
    start = next;
  }
  const r0 = nowMs();
  await node.commit(deleteSql(svc));
  await tap.next(name, 'remove', r0, 120_000);
  return out;
}

// ---- VMs: commit -> SSH ready vs bare QEMU; kill -9 -> new QEMU (bench/lib/reaction-vm.ts) ------

const vmContext: VmContext = { node, children, guestImages: GUEST_IMAGES, prefix: P, sshProbeMs: SSH_PROBE_MS, settleMs: SETTLE_MS, until, vmSql, deleteSql };
let lastRecord: VmRecordLite | undefined;

async function vms(): Promise<Array<{ a: VmAgentRound; b: { totalMs: number; bannerMs: number }; order: string }>> {
  return interleave(
    'vm',
    async (i) => {
      const a = await vmAgentRound(vmContext, i);
      lastRecord = a.record;
      log(`vm round ${i}: agent ${r1(a.totalMs)} ms (wake ${a.wakeMs?.toFixed(0) ?? '?'}, pass planned ${a.passMs?.toFixed(0) ?? '?'}, launchedAt ${a.launchedMs.toFixed(0)}, QEMU seen ${a.qemuSeenMs.toFixed(0)}, agent ready ${a.agentReadyMs.toFixed(0)}); kill -9 -> new QEMU ${r1(a.killToNewQemuMs)} ms`);
      return a;
    },
    async (i) => {
      const b = await vmBareRound(vmContext, i, lastRecord!);
      log(`vm round ${i}: bare ${r1(b.totalMs)} ms`);
      return b;
    },
  );
}

// ---- idle CPU ---------------------------------------------------------------------------------

interface Idle {
  containers: number;
  vms: number;
  windowS: number;
  convergeS: number;
  selfPct: number;
  childrenPct: number;
  helpersPct: number;
  totalPct: number;
  wakes: number;
  passes: number;
  qemuPct: number;
}

async function idle(): Promise<Idle> {
  const t0 = nowMs();
  const cs = `${P}i`;
  const vs = `${P}j`;
  const comps = Object.fromEntries(Array.from({ length: IDLE_CONTAINERS }, (_, i) => [`c${i}`, SLEEP_CMD]));
  const vmNames = Array.from({ length: IDLE_VMS }, (_, i) => `m${i}`);
  await node.commit((IDLE_CONTAINERS > 0 ? containerSql(cs, comps) : '') + (IDLE_VMS > 0 ? vmSql(vs, vmNames) : ''));
  await until('the idle set to converge', async () => {
    const st = JSON.parse((await children.must(process.execPath, [BIN, '--db', node.db, '--config', node.config, 'status', '--json'], 60_000)).stdout) as { summary: Record<string, number> };
    return (st.summary['in-sync'] ?? 0) === IDLE_CONTAINERS + IDLE_VMS && Object.keys(st.summary).length === 1;
  }, 15 * 60_000, 2000);
  const convergeS = (nowMs() - t0) / 1000;
  log(`idle: ${IDLE_CONTAINERS} containers and ${IDLE_VMS} VMs in-sync after ${convergeS.toFixed(1)} s; settling 5 s, then ${IDLE_SECONDS} s window`);
  await sleep(5000);
  const qemus = (): number[] => qemuPidsWith([node.dir]);
  const qemuTicks = (): number => qemus().reduce((s, p) => {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return s + Number(f[11]) + Number(f[12]);
    } catch {
      return s;
    }
  }, 0);
  const a0 = node.agentCpu()!;
  const q0 = qemuTicks();
  const w0 = nowMs();
  const logFrom = node.logLines().length;
  await sleep(IDLE_SECONDS * 1000);
  const a1 = node.agentCpu()!;
  const q1 = qemuTicks();
  const windowS = (nowMs() - w0) / 1000;
  const lines = node.logLines().slice(logFrom);
  const pct = (ticks: number): number => (ticks / CLK_TCK / windowS) * 100;
  return {
    containers: IDLE_CONTAINERS,
    vms: IDLE_VMS,
    windowS,
    convergeS,
    selfPct: pct(a1.self - a0.self),
    childrenPct: pct(a1.children - a0.children),
    // helpers alive at both ends (a podman events stream restarts every 60 s; a restarted one counts from 0)
    helpersPct: pct(Math.max(0, a1.helpers - a0.helpers)),
    totalPct: pct(a1.self - a0.self + a1.children - a0.children + Math.max(0, a1.helpers - a0.helpers)),
    wakes: lines.filter((l) => l.msg === 'wake').length,
    passes: lines.filter((l) => l.msg === 'reconcile pass').length,
    qemuPct: pct(q1 - q0),
  };
}

// ---- report ----------------------------------------------------------------------------------

const ms = (x: number): string => `${x.toFixed(0)} ms`;
const list = (xs: number[], f: (x: number) => string): string => xs.map(f).join(' ');

function report(r: { containers?: Awaited<ReturnType<typeof containers>>; backoff?: Retry[]; vm?: Awaited<ReturnType<typeof vms>>; idle?: Idle }): void {
  const rows: string[][] = [];
  const perRound: string[] = [];
  const json: Record<string, unknown> = { bench: 'reaction', node: process.version, rounds: ROUNDS, warmup_rounds: WARMUP, accel: 'tcg' };
  const pairRow = (label: string, bareLabel: string, goal: string, ps: Pair[], key: string): void => {
    const ratios = ps.map((p) => p.agent / p.bare);
    rows.push([label, ms(median(ps.map((p) => p.agent))), `${bareLabel}: ${ms(median(ps.map((p) => p.bare)))}`, `${r2(median(ps.map((p) => p.agent)) / median(ps.map((p) => p.bare))).toFixed(2)}x`, goal]);
    perRound.push(`${key}: agent ${list(ps.map((p) => p.agent), (x) => x.toFixed(0))} ms; bare ${list(ps.map((p) => p.bare), (x) => x.toFixed(0))} ms; ratio ${list(ratios, (x) => x.toFixed(2))} (median ${r2(median(ratios)).toFixed(2)})`);
    json[key] = { agent_ms: ps.map((p) => r1(p.agent)), bare_ms: ps.map((p) => r1(p.bare)), order: ps.map((p) => p.order), ratio_of_medians: r2(median(ps.map((p) => p.agent)) / median(ps.map((p) => p.bare))), ratios: ratios.map(r2) };
  };
  if (r.containers) {
    pairRow('a container killed (`podman kill`): its `died` event -> its restart\'s `start` event', '`podman start` issued -> `start` event', '<= 1.2x', r.containers.kill, 'kill_restart');
    pairRow('a master\'s `sqlite3` commit of a new component done -> its `start` event', '`podman run -d` issued -> `start` event', '<= 1.15x', r.containers.commit, 'commit_start');
    perRound.push(`podman kill issued -> died event: ${list(r.containers.killToDied, (x) => x.toFixed(0))} ms`);
  }
  if (r.vm) {
    const kills = r.vm.map((x) => x.a.killToNewQemuMs);
    rows.push(['`kill -9` of a VM\'s QEMU -> a new QEMU process in /proc', ms(median(kills)), '-', `max ${ms(Math.max(...kills))}`, '<= 50 ms']);
    perRound.push(`vm kill -9 -> new QEMU: ${list(kills, (x) => x.toFixed(0))} ms`);
    json.vm_kill_ms = kills.map(r1);
  }
  if (r.backoff) {
    const late = r.backoff.map((x) => x.latenessMs);
    rows.push(['backoff expiry (`next_attempt_at`) -> the retry\'s `start` event', `${ms(median(late))} late`, 'the backoff itself', `max ${ms(Math.max(...late))} late`, 'within 100 ms']);
    perRound.push(`backoff lateness: ${r.backoff.map((x) => `failure ${x.failures}: ${x.latenessMs.toFixed(0)} ms`).join('; ')}`);
    json.backoff = r.backoff.map((x) => ({ failures: x.failures, next_attempt_at: x.nextAttemptAt, lateness_ms: r1(x.latenessMs) }));
  }
  if (r.vm) {
    const ps: Pair[] = r.vm.map((x) => ({ agent: x.a.totalMs, bare: x.b.totalMs, order: x.order }));
    pairRow('a master\'s commit of a VM (TCG, SLIRP) -> SSH answers with the pinned key', 'QEMU with the identical argv spawned -> SSH ready', '<= 1.02x', ps, 'vm_commit_ssh');
    const m = (f: (a: VmAgentRound) => number | undefined): string => {
      const xs = r.vm!.map((x) => f(x.a)).filter((x): x is number => x !== undefined);
      return xs.length ? ms(median(xs)) : '?';
    };
    perRound.push(`vm, agent side, medians from the commit: wake logged ${m((a) => a.wakeMs)}, pass planned ${m((a) => a.passMs)}, VM record launchedAt ${m((a) => a.launchedMs)}, QEMU in /proc ${m((a) => a.qemuSeenMs)}, SSH banner ${m((a) => a.bannerMs)}, our SSH handshake ${m((a) => a.totalMs)}, agent's own ready file ${m((a) => a.agentReadyMs)}; bare: banner ${ms(median(r.vm.map((x) => x.b.bannerMs)))}`);
    json.vm_breakdown = r.vm.map((x) => ({ wake_ms: x.a.wakeMs, pass_ms: x.a.passMs, launched_ms: r1(x.a.launchedMs), qemu_seen_ms: r1(x.a.qemuSeenMs), banner_ms: r1(x.a.bannerMs), ssh_ready_ms: r1(x.a.totalMs), agent_ready_file_ms: x.a.agentReadyMs, bare_banner_ms: r1(x.b.bannerMs), bare_ssh_ready_ms: r1(x.b.totalMs) }));
  }
  if (r.idle) {
    const i = r.idle;
    rows.push([`agent CPU while idle, ${i.containers} containers + ${i.vms} VMs, ${i.windowS.toFixed(0)} s window`, `${i.totalPct.toFixed(2)}% of a core`, '-', `self ${i.selfPct.toFixed(2)}%, reaped children ${i.childrenPct.toFixed(2)}%, live helpers ${i.helpersPct.toFixed(2)}%`, '< 1%']);
    perRound.push(`idle: ${i.wakes} wakes and ${i.passes} passes in the window; the ${i.vms} QEMUs (TCG) used ${i.qemuPct.toFixed(0)}% of a core; converged ${i.convergeS.toFixed(0)} s after the commit`);
    json.idle = i;
  }
  console.log(`reaction benchmark: ${ROUNDS} interleaved rounds after ${WARMUP} warm-up (node ${process.version}, TCG)\n`);
  console.log('| reaction | agent | bare limit, same run | ratio / lateness | goal |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  console.log('');
  for (const l of perRound) console.log(`- ${l}`);
  json.clock_drift_ms = r1(Date.now() - nowMs());
  if (JSON_OUT === '-') console.log(JSON.stringify(json));
  else if (JSON_OUT) writeFileSync(JSON_OUT, `${JSON.stringify(json, null, 2)}\n`);
}

// ---- main ------------------------------------------------------------------------------------

let failed = false;
try {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run npm run build first');
  for (const f of ['vmlinux', 'initrd.gz', 'id_ed25519', 'host_key.pub']) if (!existsSync(join(GUEST_IMAGES, f))) throw new Error(`${GUEST_IMAGES}/${f} is missing: run scripts/build-guest`);
  log(`tag ${tag} (names ${P}*), dir ${node.dir}; phases ${[...PHASES].join(',')}`);
  await tap.start(children, childEnv);
  await node.create({ backoffMaxMs: BACKOFF_MAX_MS });
  const pid = await node.startAgent();
  log(`agent ${node.agentId} running, pid ${pid}`);
  const result: Parameters<typeof report>[0] = {};
  if (PHASES.has('containers')) result.containers = await containers();
  if (PHASES.has('backoff')) result.backoff = await backoff();
  if (PHASES.has('vm')) result.vm = await vms();
  if (PHASES.has('idle')) result.idle = await idle();
  report(result);
} catch (err) {
  failed = true;
  if (!signals.interrupted) process.stderr.write(`reaction bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  if (!(await cleanup())) {
    process.stderr.write(`reaction bench: CLEANUP INCOMPLETE: look for containers named ${P}* and QEMUs under ${node.dir}\n`);
    failed = true;
  }
}
if (failed) process.exitCode = 1;
