/**
 * `npm run bench:nats`: desired state through NATS JetStream KV (issue 11, Benchmark).
 *
 *   NATS_BENCH_PART=a|b|all (default all) node --import tsx bench/nats.bench.ts
 *
 * (a) push (bench/lib/nats-push.ts): a change of one service (a new env value, so the container
 * is replaced) -> the podman `start` event of the new container, on a real agent watching NATS
 * (a kv.put from a connected client, and `agent fleet apply --nats`), vs the same change pushed
 * with `agent fleet apply` over SSH to a node in a network namespace; NATS_BENCH_ROUNDS (default
 * 5) rounds interleaved after a warm-up; medians and the ratios NATS/SSH. Requires dist/
 * (npm run build), root (namespaces), podman, sshd, nats-server.
 *
 * (b) fan-out: NATS_BENCH_NODES (default 500) simulated node watchers, spread over
 * NATS_BENCH_PROCS (default 4) processes, each node its own connection watching its own
 * `desired.<node>.>`; the master puts one key per node (NATS_BENCH_PARALLEL puts in flight) and we
 * measure, per node, put-issued -> value-seen (p50/p99), the time until every watcher has its value,
 * and nats-server's CPU time and RSS from /proc. Baseline from the same run: the same puts into a
 * bucket nobody watches; printed as a ratio.
 *
 * Cleanup always runs (finally, SIGINT, SIGTERM): children ended by pid, agents and their
 * containers, sshd, namespaces, nats-server and temp dirs removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, type KV } from 'nats';
import { desiredKey } from '../src/nats/keys.js';
import { ROOT } from '../test/helpers/agent.js';
import { NatsServer } from '../test/helpers/nats-server.js';
import { ChildTracker, cleanUpOnSignals } from './lib/children.js';
import { PUSH_PROBES, PushBench, type PushSample } from './lib/nats-push.js';
import { cpuTicks } from './lib/procfs.js';
import { median, r1, r2 } from './lib/stats.js';

const NODES = Number(process.env.NATS_BENCH_NODES ?? 500);
const PROCS = Number(process.env.NATS_BENCH_PROCS ?? 4);
const PARALLEL = Number(process.env.NATS_BENCH_PARALLEL ?? 64);
const ROUNDS = Number(process.env.NATS_BENCH_ROUNDS ?? 5);
const PART = process.env.NATS_BENCH_PART ?? 'all';
const TICK_MS = 1000 / 100; // USER_HZ

if (!['a', 'b', 'all'].includes(PART)) throw new Error(`NATS_BENCH_PART: ${PART} is not one of a, b, all`);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) throw new Error(`NATS_BENCH_ROUNDS: ${ROUNDS} is not a whole number from 1 to 50`);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const tracker = new ChildTracker({ cwd: ROOT, env: { ...process.env, AGENT_LOG_LEVEL: 'warn' } });
/** What each part must undo; run by cleanup() on success, failure or a signal. */
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaning ??= (async () => {
    await tracker.endAll(10_000);
    for (const c of cleanups.reverse()) await c().catch((err: Error) => process.stderr.write(`nats bench: cleanup: ${err.message}\n`));
  })());
cleanUpOnSignals((msg) => void process.stderr.write(`nats bench: ${msg}\n`), cleanup);

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const serverCpuMs = (pid: number): number => (cpuTicks(pid)?.self ?? 0) * TICK_MS;

/** Puts one manifest per node, PARALLEL at a time; returns when each put was issued (epoch ms). */
async function putAll(kv: KV, value: string): Promise<Map<string, number>> {
  const issued = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < NODES; i = next++) {
      issued.set(`n${i}`, Date.now());
      await kv.put(desiredKey(`n${i}`, 'web'), value);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return issued;
}

/** Part (b): the fan-out to NODES watchers. */
async function fanOut(): Promise<void> {
  const server = await NatsServer.start();
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children) c.stdin?.end();
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await server.cleanup();
  };
  cleanups.push(stop);
  try {
    const nc = await connect({ servers: server.url });
    const js = nc.jetstream();
    const value = JSON.stringify({ name: 'web', components: [{ name: 'c', runtime: 'container', image: 'localhost/agent-busybox:latest', cmd: ['sleep', '600'] }] });

    // Baseline: the same puts, nobody watching.
    const idle = await js.views.kv('bench-idle', { history: 5 });
    let t0 = Date.now();
    await putAll(idle, value);
    const baselineMs = Date.now() - t0;

    const kv = await js.views.kv('bench-fanout', { history: 5 });
    const seen = new Map<string, number>();
    const rssIdle = rssMiB(server.pid!);
    const perProc = Math.ceil(NODES / PROCS);
    let allSeen: () => void = () => {};
    const done = new Promise<void>((r) => (allSeen = r));
    const ready: Array<Promise<void>> = [];
    for (let p = 0; p < PROCS; p++) {
      const first = p * perProc;
      const count = Math.min(perProc, NODES - first);
      if (count <= 0) break;
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/nats-watchers.ts', server.url, 'bench-fanout', String(first), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      ready.push(
        new Promise((resolve, reject) => {
          child.once('exit', (code) => reject(new Error(`watcher process exited ${code}`)));
          createInterface({ input: child.stdout! }).on('line', (line) => {
            if (line === 'ready') return resolve();
            const m = /^got (\S+) (\d+)$/.exec(line);
            if (m && !seen.has(m[1]!)) {
              seen.set(m[1]!, Number(m[2]));
              if (seen.size === NODES) allSeen();
            }
          });
        }),
      );
    }
    t0 = Date.now();
    await Promise.all(ready);
    const setupMs = Date.now() - t0;
    const rssWatched = rssMiB(server.pid!);
    const cpu0 = serverCpuMs(server.pid!);
    t0 = Date.now();
    const issued = await putAll(kv, value);
    const putsMs = Date.now() - t0;
    const timeout = setTimeout(() => allSeen(), 60_000);
    await done;
    clearTimeout(timeout);
    const lastMs = Math.max(...seen.values()) - t0;
    const cpuMs = serverCpuMs(server.pid!) - cpu0;
    const lat = [...seen].map(([n, at]) => at - issued.get(n)!);

    console.log(`NATS fan-out: ${NODES} watchers (${PROCS} processes, one connection and one desired.<node>.> watch each), one put per node, ${PARALLEL} puts in flight`);
    console.log(`  watchers that got their value: ${seen.size}/${NODES}${seen.size < NODES ? '  (60 s timeout hit)' : ''}`);
    console.log(`  put issued -> value seen: p50 ${lat.length ? pct(lat, 50) : '-'} ms, p99 ${lat.length ? pct(lat, 99) : '-'} ms, max ${lat.length ? Math.max(...lat) : '-'} ms`);
    console.log(`  all ${NODES} puts acked: ${putsMs} ms; every watcher has its value: ${lastMs} ms after the first put`);
    console.log(`  baseline, the same puts into an unwatched bucket: ${baselineMs} ms; ratio watched/unwatched: ${r1(putsMs / Math.max(1, baselineMs))}x`);
    console.log(`  nats-server: CPU ${Math.round(cpuMs)} ms for the fan-out (${r1(cpuMs / NODES)} ms per node); RSS ${r1(rssIdle)} MiB idle -> ${r1(rssWatched)} MiB with ${NODES} watchers (${r1(((rssWatched - rssIdle) * 1024) / NODES)} KiB per watcher); watcher setup ${setupMs} ms`);
    await nc.close();
  } finally {
    await stop();
  }
}

/** Part (a): push a change through NATS vs over SSH, printed as medians and ratios. */
async function push(): Promise<void> {
  const bench = new PushBench(tracker);
  cleanups.push(() => bench.cleanup());
  try {
    const samples = await bench.run(ROUNDS);
    const med = (p: (typeof PUSH_PROBES)[number], k: keyof PushSample): number => median(samples[p].map((s) => s[k]));
    const pad = (x: string | number, n: number): string => String(x).padStart(n);
    console.log(`NATS vs SSH push: one service changed (new env value -> container replaced), ${ROUNDS} rounds interleaved after a warm-up; median ms`);
    console.log(`${'probe'.padEnd(11)}${pad('issued->start', 15)}${pad('->delivered', 13)}${pad('written->start', 16)}${pad('action->start', 15)}   samples (issued->start)`);
    for (const p of PUSH_PROBES) {
      console.log(`${p.padEnd(11)}${pad(Math.round(med(p, 'total')), 15)}${pad(Math.round(med(p, 'delivered')), 13)}${pad(Math.round(med(p, 'reconcile')), 16)}${pad(Math.round(med(p, 'actionToStart')), 15)}   ${samples[p].map((s) => Math.round(s.total)).join(' ')}`);
    }
    const ssh = med('ssh-fleet', 'total');
    console.log(`  ratio NATS/SSH (issued->start): nats-put/ssh-fleet ${r2(med('nats-put', 'total') / ssh)}, nats-fleet/ssh-fleet ${r2(med('nats-fleet', 'total') / ssh)}`);
    console.log(`  delivered = the node's registry row written (services.updated_at); action = the agent's replace began (its events log); start = podman's event time`);
    console.log(
      JSON.stringify({
        bench: 'nats-push',
        rounds: ROUNDS,
        median_ms: Object.fromEntries(PUSH_PROBES.map((p) => [p, { total: r1(med(p, 'total')), delivered: r1(med(p, 'delivered')), reconcile: r1(med(p, 'reconcile')), action_to_start: r1(med(p, 'actionToStart')) }])),
        samples_ms: Object.fromEntries(PUSH_PROBES.map((p) => [p, samples[p].map((s) => r1(s.total))])),
        ratio_nats_put_ssh: r2(med('nats-put', 'total') / ssh),
        ratio_nats_fleet_ssh: r2(med('nats-fleet', 'total') / ssh),
      }),
    );
  } finally {
    await bench.cleanup();
  }
}

let failed = false;
try {
  if (PART === 'a' || PART === 'all') await push();
  if (PART === 'b' || PART === 'all') await fanOut();
} catch (err) {
  failed = true;
  process.stderr.write(`nats bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanup();
}
if (failed) process.exitCode = 1;
