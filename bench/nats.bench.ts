/**
 * `npm run bench:nats`: desired state through NATS JetStream KV (issue 11, Benchmark).
 *
 * (b) fan-out: NATS_BENCH_NODES (default 500) simulated node watchers, spread over
 * NATS_BENCH_PROCS (default 4) processes, each node its own connection watching its own
 * `desired.<node>.>`; the master puts one key per node (NATS_BENCH_PARALLEL puts in flight) and we
 * measure, per node, put-issued -> value-seen (p50/p99), the time until every watcher has its value,
 * and nats-server's CPU time and RSS from /proc. Baseline from the same run: the same puts into a
 * bucket nobody watches; printed as a ratio.
 *
 * TODO (a), needs the agent side of issue 11: put -> `start` event of the container on a real
 * agent watching NATS, vs the same change pushed with `fleet apply` over SSH to a netns node
 * (reuse bench/fleet.bench.ts's lab), same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, type KV } from 'nats';
import { desiredKey } from '../src/nats/keys.js';
import { NatsServer } from '../test/helpers/nats-server.js';
import { cpuTicks } from './lib/procfs.js';
import { r1 } from './lib/stats.js';

const NODES = Number(process.env.NATS_BENCH_NODES ?? 500);
const PROCS = Number(process.env.NATS_BENCH_PROCS ?? 4);
const PARALLEL = Number(process.env.NATS_BENCH_PARALLEL ?? 64);
const TICK_MS = 1000 / 100; // USER_HZ

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
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

const server = await NatsServer.start();
const children: ChildProcess[] = [];
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
  for (const c of children) c.stdin?.end();
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  await server.cleanup();
}
