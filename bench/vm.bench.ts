/**
 * Benchmark (not a test): what the agent costs on top of QEMU, for unikernel VMs under TCG.
 *
 *   node --import tsx bench/vm.bench.ts     (env: BENCH_VM_ROUNDS, default 5; BENCH_VM_COUNT, default 10)
 *
 * Always TCG (AGENT_ACCEL=tcg for every agent process; the bare QEMU reuses the agent's own
 * argument list, which says tcg). Network: SLIRP with hostfwd on 127.0.0.1 only. Requires dist/
 * (npm run build) and the guest image in var/images (scripts/build-guest).
 *
 * Part 1, boot: one kernel-boot VM (memory 128, kernel vmlinux + initrd.gz), interleaved over N
 * rounds (order alternating each round) after one discarded warm-up round:
 *   - agent: clock starts, `agent --db D apply -f F`, then `agent --db D run --once` (which returns
 *            only after SSH answered with the pinned host key), clock stops. `apply` alone is
 *            reported too (the CLI's overhead), and the agent's own launch-to-ready time (from
 *            the VM record's launchedAt to the `ready` file it writes).
 *   - bare:  `qemu-system-x86_64` spawned with exactly the argument list the agent used (the
 *            `args` of D/vm/<name>/spec.json), only the pidfile/QMP/serial paths moved to a
 *            separate temp dir and the hostfwd port moved to another free port; clock from spawn
 *            to the SSH banner (probeBanner, polled like the agent does: 300 ms attempts, 100 ms
 *            apart) and on to a full sshConnect with the pinned host key (the agent does a full
 *            handshake too).
 *   Between boots the VM goes away: `agent delete` + `agent run --once` for the agent's, a
 *   SIGTERM (then SIGKILL) by pid for the bare one.
 *
 * Part 2, RSS: `agent --db D2 run` (the long-running agent) is started with an empty registry; its
 * VmRSS is sampled (baseline); then a service of M VM components is applied, and once
 * `status --json` shows all M in-sync, the agent's VmRSS and the summed VmRSS of the M QEMU
 * processes are sampled once a second for ~10 s. Then the agent gets SIGTERM, the service is
 * deleted and `agent run --once` stops the VMs.
 *
 * Cleanup always runs (finally, SIGINT, SIGTERM): children ended by pid, every QEMU whose
 * /proc/PID/cmdline contains one of our temp dirs killed by pid (SIGTERM, then SIGKILL), temp
 * dirs removed, and a final /proc scan (plus `pgrep -af qemu-system`) must show none of ours.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ChildTracker, cleanUpOnSignals, type Ran } from './lib/children.js';
import { probeBanner, sshConnect, type SshTarget } from '../src/runtime/ssh.js';
import { median, r1, r2 } from './lib/stats.js';
import { alive, killQemus, qemuPidsWith } from './lib/procfs.js';
import { bareArgs, freePort, type VmRecordLite } from './lib/vm.js';

/** Ends QEMU processes of this bench (only while their command line still points into our dirs). */
const killQemusIn = (pids: number[]): Promise<void> => killQemus(pids, ourDirs);

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/agent.js');
const GUEST_IMAGES = join(ROOT, 'var/images');
const QEMU = 'qemu-system-x86_64';
const ROUNDS = Number(process.env.BENCH_VM_ROUNDS ?? 5);
const WARMUP_ROUNDS = 1;
const VM_COUNT = Number(process.env.BENCH_VM_COUNT ?? 10);
const RSS_SAMPLES = 10;
const RSS_EVERY_MS = 1000;
const BOOT_TIMEOUT_MS = 90_000;

const tag = randomBytes(4).toString('hex');
const bootService = `bvm${tag}`;
const rssService = `rvm${tag}`;
// Three temp dirs: the agent's for part 1 (D), the bare QEMU's state (B), the agent's for part 2.
const bootDir = mkdtempSync(join(tmpdir(), 'agent-bench-vm-'));
const bareDir = mkdtempSync(join(tmpdir(), 'agent-bench-vmbare-'));
const rssDir = mkdtempSync(join(tmpdir(), 'agent-bench-vmrss-'));
const ourDirs = [bootDir, bareDir, rssDir];
const bootDb = join(bootDir, 'agent.db');
const rssDb = join(rssDir, 'agent.db');

// Children see none of the caller's AGENT_* settings, only ours: TCG always.
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENT_')));
Object.assign(childEnv, { AGENT_ACCEL: 'tcg', AGENT_LOG_LEVEL: 'warn' });

const log = (msg: string): void => void process.stderr.write(`vm bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- child processes (tracked, so an interrupt can end them by pid) ----

const children = new ChildTracker({ cwd: ROOT, env: childEnv });
const run = (cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Ran> => children.run(cmd, args, opts);
const must = (cmd: string, args: string[], timeoutMs = 300_000): Promise<Ran> => children.must(cmd, args, timeoutMs);
const agentCli = (db: string, args: string[], timeoutMs?: number): Promise<Ran> => must(process.execPath, [BIN, '--db', db, ...args], timeoutMs);
const endChildren = (): Promise<void> => children.endAll(15_000);

// ---- /proc ---------------------------------------------------------------------------------

/** kB from a /proc/PID/status field (VmRSS, VmHWM), or undefined when the process is gone. */
function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}



// ---- cleanup -------------------------------------------------------------------------------

let cleaning: Promise<boolean> | undefined;

/** Idempotent; resolves true when no QEMU of ours is left and the temp dirs are gone. */
function cleanup(): Promise<boolean> {
  cleaning ??= (async () => {
    await endChildren();
    const found = qemuPidsWith(ourDirs);
    if (found.length > 0) log(`cleanup: killing ${found.length} QEMU process(es) of ours by pid: ${found.join(' ')}`);
    await killQemusIn(found);
    for (const d of ourDirs) rmSync(d, { recursive: true, force: true });
    const left = qemuPidsWith(ourDirs);
    // pgrep matches the process name, which QEMU's -name process=... replaces: -f matches argv.
    const pg = await run('pgrep', ['-af', 'qemu-system']).catch(() => undefined);
    const pgOurs = (pg?.stdout ?? '').split('\n').filter((l) => ourDirs.some((d) => l.includes(d)));
    const dirsLeft = ourDirs.filter((d) => existsSync(d));
    log(`cleanup: ${left.length} QEMU of ours in /proc, ${pgOurs.length} in pgrep -af qemu-system; temp dirs ${dirsLeft.length === 0 ? 'removed' : `STILL PRESENT: ${dirsLeft.join(' ')}`}`);
    return left.length === 0 && pgOurs.length === 0 && dirsLeft.length === 0;
  })();
  return cleaning;
}

const signals = cleanUpOnSignals(log, cleanup);

class Interrupted extends Error {}
const checkInterrupted = (): void => {
  if (signals.interrupted) throw new Interrupted('interrupted');
};

// ---- statistics ----------------------------------------------------------------------------

const stats = (xs: number[]): { min: number; median: number; max: number } => ({ min: Math.min(...xs), median: median(xs), max: Math.max(...xs) });
const statsR = (xs: number[], r: (x: number) => number = r1): { min: number; median: number; max: number } => {
  const s = stats(xs);
  return { min: r(s.min), median: r(s.median), max: r(s.max) };
};

// ---- helpers -------------------------------------------------------------------------------

function readRecord(db: string, workload: string): VmRecordLite {
  return JSON.parse(readFileSync(join(db, '..', 'vm', workload, 'spec.json'), 'utf8')) as VmRecordLite;
}

function vmManifest(service: string, components: string[]): string {
  let out = `name = "${service}"\nruntime = "unikernel"\n`;
  for (const c of components) out += `\n[[components]]\nname = "${c}"\nmemory = 128\nkernel = "vmlinux"\ninitrd = "initrd.gz"\n`;
  return out;
}

/** The argument list with this run's varying parts (state dir, port) normalised, to compare runs. */
const normalised = (args: string[], stateDir: string, port: number): string => args.join('\0').replaceAll(stateDir, '<DIR>').replaceAll(`127.0.0.1:${port}-`, '127.0.0.1:<PORT>-');

// ---- part 1: boot --------------------------------------------------------------------------

interface AgentBoot {
  totalMs: number;
  applyMs: number;
  runOnceMs: number;
  /** launchedAt in the VM record to the `ready` file the agent wrote when SSH answered. */
  launchToReadyMs: number;
  record: VmRecordLite;
}

interface BareBoot {
  /** spawn to the daemonizing parent's exit (the VM is set up and running). */
  daemonizedMs: number;
  bannerMs: number;
  readyMs: number;
  probes: number;
}

const bootWorkload = `${bootService}-k`;
const bootManifest = join(bootDir, `${bootService}.toml`);
const sshKey = readFileSync(join(GUEST_IMAGES, 'id_ed25519'));

async function agentBoot(): Promise<AgentBoot> {
  const t0 = performance.now();
  const apply = await agentCli(bootDb, ['apply', '-f', bootManifest]);
  const once = await agentCli(bootDb, ['run', '--once']);
  const totalMs = performance.now() - t0;
  const record = readRecord(bootDb, bootWorkload);
  const ready = readFileSync(join(bootDir, 'vm', bootWorkload, 'ready'), 'utf8').trim();
  return { totalMs, applyMs: apply.ms, runOnceMs: once.ms, launchToReadyMs: Date.parse(ready) - Date.parse(record.launchedAt), record };
}

async function agentTeardown(): Promise<void> {
  await agentCli(bootDb, ['delete', bootService]);
  await agentCli(bootDb, ['run', '--once']);
  const left = qemuPidsWith([bootDir]);
  if (left.length > 0) {
    log(`ODD: QEMU still running after delete + run --once: ${left.join(' ')}; killing it`);
    await killQemusIn(left);
  }
  if (existsSync(join(bootDir, 'vm', bootWorkload))) log(`ODD: state dir of ${bootWorkload} still present after delete + run --once`);
}

async function bareBoot(agentRecord: VmRecordLite, round: string): Promise<BareBoot> {
  const stateDir = join(bareDir, round);
  mkdirSync(stateDir, { mode: 0o700 });
  const port = await freePort(new Set([agentRecord.sshPort]));
  const args = bareArgs(agentRecord.args, join(bootDir, 'vm', bootWorkload), stateDir, agentRecord.sshPort, port);
  writeFileSync(join(stateDir, 'console.log'), '');
  const target: SshTarget = { host: '127.0.0.1', port, user: agentRecord.sshUser, privateKey: sshKey, hostKey: agentRecord.hostKey };
  try {
    const t0 = performance.now();
    const q = await run(QEMU, args, { timeoutMs: 30_000 });
    const daemonizedMs = performance.now() - t0;
    if (q.code !== 0) throw new Error(`bare ${QEMU} exited ${q.code ?? q.signal}: ${q.stderr.trim()}`);
    const pid = Number(readFileSync(join(stateDir, 'qemu.pid'), 'utf8').trim());
    // The agent's loop (waitForSsh): a 300 ms banner probe, 100 ms apart, then a full handshake.
    let bannerMs: number | undefined;
    let probes = 0;
    for (;;) {
      checkInterrupted();
      if (performance.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`bare QEMU: SSH did not answer within ${BOOT_TIMEOUT_MS / 1000} s; console:\n${readFileSync(join(stateDir, 'console.log'), 'utf8').slice(-2000)}`);
      if (!alive(pid)) throw new Error(`bare QEMU exited while booting; console:\n${readFileSync(join(stateDir, 'console.log'), 'utf8').slice(-2000)}`);
      probes++;
      if (await probeBanner(target.host, target.port, 300)) {
        bannerMs ??= performance.now() - t0;
        try {
          const c = await sshConnect(target, 10_000);
          c.end();
          return { daemonizedMs, bannerMs, readyMs: performance.now() - t0, probes };
        } catch (err) {
          if (/does not match the pinned key/.test((err as Error).message)) throw err;
        }
      }
      await sleep(100);
    }
  } finally {
    // The pidfile path in its argv points into stateDir: this finds the daemon (pid) and nothing else.
    await killQemusIn(qemuPidsWith([stateDir]));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface BootResult {
  rounds: number;
  agent: AgentBoot[];
  bare: BareBoot[];
  order: string[];
  args: string[];
  warmup: { agentMs: number; bareMs: number };
}

async function bootBench(): Promise<BootResult> {
  symlinkSync(GUEST_IMAGES, join(bootDir, 'images'));
  writeFileSync(bootManifest, vmManifest(bootService, ['k']));
  const agent: AgentBoot[] = [];
  const bare: BareBoot[] = [];
  const order: string[] = [];
  let lastRecord: VmRecordLite | undefined;
  let reference: string | undefined;
  let warmup = { agentMs: 0, bareMs: 0 };

  for (let round = -WARMUP_ROUNDS; round < ROUNDS; round++) {
    const agentFirst = round < 0 || round % 2 === 0; // the bare boot needs an argument list first
    const got: { a?: AgentBoot; b?: BareBoot } = {};
    for (const which of agentFirst ? (['agent', 'bare'] as const) : (['bare', 'agent'] as const)) {
      checkInterrupted();
      if (which === 'agent') {
        const a = await agentBoot();
        const norm = normalised(a.record.args, join(bootDir, 'vm', bootWorkload), a.record.sshPort);
        reference ??= norm;
        if (norm !== reference) log(`ODD: round ${round + 1}: the agent's QEMU argument list differs from the first one's`);
        lastRecord = a.record;
        got.a = a;
        await agentTeardown();
      } else {
        got.b = await bareBoot(lastRecord!, `r${round + WARMUP_ROUNDS}`);
      }
      await sleep(500); // let the host settle between boots
    }
    const a = got.a!;
    const b = got.b!;
    if (round < 0) {
      warmup = { agentMs: a.totalMs, bareMs: b.readyMs };
      log(`warm-up: agent ${a.totalMs.toFixed(0)} ms, bare ${b.readyMs.toFixed(0)} ms (discarded)`);
      continue;
    }
    agent.push(a);
    bare.push(b);
    order.push(agentFirst ? 'agent,bare' : 'bare,agent');
    log(
      `round ${round + 1}/${ROUNDS} (${agentFirst ? 'agent first' : 'bare first'}): agent ${a.totalMs.toFixed(0)} ms (apply ${a.applyMs.toFixed(0)}, run --once ${a.runOnceMs.toFixed(0)}, launch->ready ${a.launchToReadyMs} ms); ` +
        `bare ${b.readyMs.toFixed(0)} ms (daemonized ${b.daemonizedMs.toFixed(0)}, banner ${b.bannerMs.toFixed(0)}, ${b.probes} probes)`,
    );
  }
  return { rounds: ROUNDS, agent, bare, order, args: lastRecord!.args, warmup };
}

// ---- part 2: RSS ---------------------------------------------------------------------------

interface StatusJson {
  agent: { running: boolean; pid: number | null };
  summary: Record<string, number>;
  components: Array<{ component: string; drift: string; observed: string }>;
}

const status = async (): Promise<StatusJson> => JSON.parse((await agentCli(rssDb, ['status', '--json'], 60_000)).stdout) as StatusJson;

/** pids of the QEMUs of the part-2 registry, from their pidfiles, checked against /proc. */
function rssQemuPids(): number[] {
  const vmDir = join(rssDir, 'vm');
  if (!existsSync(vmDir)) return [];
  const ours = new Set(qemuPidsWith([rssDir]));
  const pids: number[] = [];
  for (const name of readdirSync(vmDir)) {
    try {
      const pid = Number(readFileSync(join(vmDir, name, 'qemu.pid'), 'utf8').trim());
      if (ours.has(pid) && alive(pid)) pids.push(pid);
    } catch {
      /* no pidfile */
    }
  }
  return pids;
}

interface RssResult {
  vms: number;
  agentPid: number;
  baselineKb: number[];
  loadedKb: number[];
  qemuTotalKb: number[];
  qemuPerVmKb: number[];
  agentHwmKb: number;
  allInSyncS: number;
  agentStopMs: number;
  agentExit: string;
  stopVmsS: number;
}

async function rssBench(): Promise<RssResult> {
  symlinkSync(GUEST_IMAGES, join(rssDir, 'images'));
  const components = Array.from({ length: VM_COUNT }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const manifest = join(rssDir, `${rssService}.toml`);
  writeFileSync(manifest, vmManifest(rssService, components));

  // The registry is created (and migrated) before the agent starts: a `status` racing the agent's
  // own first open of a brand-new file can find it locked. Only apply and run create one: a pass
  // over nothing does it.
  await agentCli(rssDb, ['run', '--once']);
  const outFd = openSync(join(rssDir, 'agent.out'), 'a');
  const errFd = openSync(join(rssDir, 'agent.log'), 'a');
  const agentProc = spawn(process.execPath, [BIN, '--db', rssDb, 'run'], { cwd: ROOT, env: childEnv, stdio: ['ignore', outFd, errFd] });
  closeSync(outFd);
  closeSync(errFd);
  children.track(agentProc);
  const exited = new Promise<string>((resolve) => agentProc.on('exit', (code, signal) => resolve(code !== null ? `exit ${code}` : `signal ${signal}`)));
  const agentPid = agentProc.pid!;
  const agentTail = (): string => {
    try {
      return readFileSync(join(rssDir, 'agent.log'), 'utf8').slice(-3000);
    } catch {
      return '';
    }
  };

  // Up: status says the agent with this pid is running.
  const upDeadline = Date.now() + 30_000;
  for (;;) {
    checkInterrupted();
    if (agentProc.exitCode !== null || agentProc.signalCode !== null) throw new Error(`agent run exited at start:\n${agentTail()}`);
    const st = await status().catch(() => undefined);
    if (st?.agent.running && st.agent.pid === agentPid) break;
    if (Date.now() > upDeadline) throw new Error(`agent run did not come up within 30 s:\n${agentTail()}`);
    await sleep(200);
  }
  const baselineKb: number[] = [];
  for (let i = 0; i < 5; i++) {
    checkInterrupted();
    const kb = procKb(agentPid, 'VmRSS');
    if (kb === undefined) throw new Error(`agent process ${agentPid} is gone:\n${agentTail()}`);
    baselineKb.push(kb);
    if (i < 4) await sleep(RSS_EVERY_MS);
  }
  log(`agent pid ${agentPid} up, no VMs: VmRSS ${baselineKb.map((k) => (k / 1024).toFixed(1)).join(', ')} MiB`);

  const t0 = performance.now();
  await agentCli(rssDb, ['apply', '-f', manifest]);
  log(`applied ${VM_COUNT} VM components; waiting for all in-sync...`);
  let lastLine = '';
  for (;;) {
    checkInterrupted();
    if (agentProc.exitCode !== null || agentProc.signalCode !== null) throw new Error(`agent run exited while booting VMs:\n${agentTail()}`);
    const st = await status();
    const inSync = st.summary['in-sync'] ?? 0;
    const line = JSON.stringify(st.summary);
    if (line !== lastLine) log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s: ${line}`);
    lastLine = line;
    if (inSync === VM_COUNT && st.components.length === VM_COUNT) break;
    if (performance.now() - t0 > 15 * 60_000) throw new Error(`not all ${VM_COUNT} VMs in-sync after 15 min: ${line}\n${agentTail()}`);
    await sleep(1000);
  }
  const allInSyncS = (performance.now() - t0) / 1000;

  const loadedKb: number[] = [];
  const qemuTotalKb: number[] = [];
  const qemuPerVmKb: number[] = [];
  for (let i = 0; i < RSS_SAMPLES; i++) {
    checkInterrupted();
    const kb = procKb(agentPid, 'VmRSS');
    if (kb === undefined) throw new Error(`agent process ${agentPid} is gone:\n${agentTail()}`);
    const pids = rssQemuPids();
    if (pids.length !== VM_COUNT) log(`ODD: sample ${i + 1}: ${pids.length} live QEMU processes, expected ${VM_COUNT}`);
    const per = pids.map((p) => procKb(p, 'VmRSS') ?? 0);
    loadedKb.push(kb);
    qemuTotalKb.push(per.reduce((a, b) => a + b, 0));
    qemuPerVmKb.push(...per);
    if (i < RSS_SAMPLES - 1) await sleep(RSS_EVERY_MS);
  }
  const agentHwmKb = procKb(agentPid, 'VmHWM') ?? 0;
  log(`with ${VM_COUNT} VMs: agent VmRSS ${loadedKb.map((k) => (k / 1024).toFixed(1)).join(', ')} MiB; QEMU total ${qemuTotalKb.map((k) => (k / 1024).toFixed(0)).join(', ')} MiB`);

  const tStop = performance.now();
  process.kill(agentPid, 'SIGTERM');
  const agentExit = await Promise.race([exited, sleep(30_000).then(() => 'still running after 30 s')]);
  const agentStopMs = performance.now() - tStop;
  if (qemuPidsWith([rssDir]).length !== VM_COUNT) log(`ODD: after the agent's SIGTERM, ${qemuPidsWith([rssDir]).length} QEMUs run (VMs should outlive the agent)`);

  const tDel = performance.now();
  await agentCli(rssDb, ['delete', rssService]);
  const once = await run(process.execPath, [BIN, '--db', rssDb, 'run', '--once'], { timeoutMs: 10 * 60_000 });
  const stopVmsS = (performance.now() - tDel) / 1000;
  if (once.code !== 0) log(`ODD: run --once after delete exited ${once.code ?? once.signal}: ${once.stderr.slice(-2000)}`);
  const left = qemuPidsWith([rssDir]);
  if (left.length > 0) log(`ODD: ${left.length} QEMU still running after delete + run --once (the cleanup kills them)`);

  return { vms: VM_COUNT, agentPid, baselineKb, loadedKb, qemuTotalKb, qemuPerVmKb, agentHwmKb, allInSyncS, agentStopMs, agentExit, stopVmsS };
}

// ---- report --------------------------------------------------------------------------------

function report(boot: BootResult, rss: RssResult): void {
  const a = {
    total: boot.agent.map((x) => x.totalMs),
    apply: boot.agent.map((x) => x.applyMs),
    runOnce: boot.agent.map((x) => x.runOnceMs),
    launchToReady: boot.agent.map((x) => x.launchToReadyMs),
  };
  const b = {
    ready: boot.bare.map((x) => x.readyMs),
    banner: boot.bare.map((x) => x.bannerMs),
    daemonized: boot.bare.map((x) => x.daemonizedMs),
  };
  const perRound = boot.agent.map((x, i) => x.totalMs / boot.bare[i]!.readyMs);
  const ratio = r2(median(a.total) / median(b.ready));
  const ratioPaired = r2(median(perRound));
  const mib = (kb: number): number => r1(kb / 1024);

  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  const row = (label: string, xs: number[]): string => {
    const s = stats(xs);
    return `${label.padEnd(44)} ${pad(s.min.toFixed(0), 7)} ${pad(s.median.toFixed(0), 7)} ${pad(s.max.toFixed(0), 7)}`;
  };
  console.log(`vm benchmark: kernel-boot VM (memory 128 MiB, vmlinux + initrd.gz), TCG, SLIRP on 127.0.0.1; ${boot.rounds} interleaved rounds after ${WARMUP_ROUNDS} warm-up round (node ${process.version})`);
  console.log(`boot, wall ms                                    ${pad('min', 7)} ${pad('median', 7)} ${pad('max', 7)}`);
  console.log(row('agent: apply + run --once (SSH ready)', a.total));
  console.log(row('  agent apply alone (CLI overhead)', a.apply));
  console.log(row('  agent run --once', a.runOnce));
  console.log(row('  agent launch->ready (spec.json -> ready)', a.launchToReady));
  console.log(row('bare qemu: spawn -> SSH ready (handshake)', b.ready));
  console.log(row('  bare qemu: spawn -> SSH banner', b.banner));
  console.log(row('  bare qemu: spawn -> daemonized', b.daemonized));
  console.log(`agent / bare (SSH ready)                     ${ratio.toFixed(2)}   (median of per-round ratios ${ratioPaired.toFixed(2)}; per round ${perRound.map((r) => r.toFixed(2)).join(' ')})`);
  console.log(`agent - bare (medians)                       ${(median(a.total) - median(b.ready)).toFixed(0)} ms; of which apply ${median(a.apply).toFixed(0)} ms`);
  console.log(`RSS: long-running agent (agent run), ${rss.vms} VM components, VmRSS MiB  min / median / max`);
  const rrow = (label: string, kbs: number[]): string => {
    const s = stats(kbs);
    return `${label.padEnd(44)} ${pad(mib(s.min).toFixed(1), 7)} ${pad(mib(s.median).toFixed(1), 7)} ${pad(mib(s.max).toFixed(1), 7)}`;
  };
  console.log(rrow(`agent, no VMs (baseline, ${rss.baselineKb.length} samples)`, rss.baselineKb));
  console.log(rrow(`agent, ${rss.vms} VMs in-sync (${rss.loadedKb.length} samples)`, rss.loadedKb));
  console.log(rrow(`sum of ${rss.vms} QEMU processes`, rss.qemuTotalKb));
  console.log(rrow('  one QEMU process', rss.qemuPerVmKb));
  console.log(`agent VmHWM ${mib(rss.agentHwmKb).toFixed(1)} MiB; agent growth with ${rss.vms} VMs ${mib(median(rss.loadedKb) - median(rss.baselineKb)).toFixed(1)} MiB (medians); all ${rss.vms} in-sync ${rss.allInSyncS.toFixed(1)} s after apply; agent SIGTERM -> ${rss.agentExit} in ${rss.agentStopMs.toFixed(0)} ms; delete + run --once stopped the VMs in ${rss.stopVmsS.toFixed(1)} s`);
  console.log(
    JSON.stringify({
      bench: 'vm',
      node: process.version,
      accel: 'tcg',
      rounds: boot.rounds,
      warmup_rounds: WARMUP_ROUNDS,
      warmup_ms: { agent: r1(boot.warmup.agentMs), bare: r1(boot.warmup.bareMs) },
      order: boot.order,
      boot_ms: {
        agent_total: statsR(a.total),
        agent_apply: statsR(a.apply),
        agent_run_once: statsR(a.runOnce),
        agent_launch_to_ready: statsR(a.launchToReady),
        bare_ready: statsR(b.ready),
        bare_banner: statsR(b.banner),
        bare_daemonized: statsR(b.daemonized),
      },
      samples_ms: { agent_total: a.total.map(r1), agent_apply: a.apply.map(r1), bare_ready: b.ready.map(r1), bare_banner: b.banner.map(r1) },
      agent_over_bare: ratio,
      agent_over_bare_paired_median: ratioPaired,
      agent_over_bare_per_round: perRound.map(r2),
      qemu_args: boot.args,
      rss: {
        vms: rss.vms,
        agent_baseline_mib: statsR(rss.baselineKb.map((k) => k / 1024)),
        agent_loaded_mib: statsR(rss.loadedKb.map((k) => k / 1024)),
        agent_hwm_mib: mib(rss.agentHwmKb),
        qemu_total_mib: statsR(rss.qemuTotalKb.map((k) => k / 1024)),
        qemu_per_vm_mib: statsR(rss.qemuPerVmKb.map((k) => k / 1024)),
        samples_kb: { agent_baseline: rss.baselineKb, agent_loaded: rss.loadedKb, qemu_total: rss.qemuTotalKb },
        all_in_sync_s: r1(rss.allInSyncS),
        agent_stop: rss.agentExit,
        stop_vms_s: r1(rss.stopVmsS),
      },
    }),
  );
}

// ---- main ----------------------------------------------------------------------------------

let failed = false;
try {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run npm run build first');
  for (const f of ['vmlinux', 'initrd.gz', 'id_ed25519', 'host_key.pub']) if (!existsSync(join(GUEST_IMAGES, f))) throw new Error(`${GUEST_IMAGES}/${f} is missing: run scripts/build-guest`);
  log(`temp dirs ${ourDirs.join(' ')}; services ${bootService}, ${rssService}`);
  const boot = await bootBench();
  log(`part 2: agent run with ${VM_COUNT} VMs`);
  const rss = await rssBench();
  report(boot, rss);
} catch (err) {
  failed = true;
  if (!(err instanceof Interrupted)) process.stderr.write(`vm bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  const clean = await cleanup();
  if (!clean) {
    process.stderr.write(`vm bench: CLEANUP INCOMPLETE: check /proc for qemu-system processes under ${ourDirs.join(', ')}\n`);
    failed = true;
  }
}
if (failed) process.exitCode = 1;
