/**
 * Benchmark (not a test): podman's CLI against its REST API (`podman system service` on a unix
 * socket, the way Nomad's podman driver talks to podman), for the calls the agent makes.
 *
 *   node --import tsx bench/podman-api.bench.ts [--json]     (env: BENCH_PODMAN_API_ROUNDS, default 10;
 *                                                            BENCH_PODMAN_API_CONTAINERS, default 5)
 *
 * A service `podman system service --time 0 unix:///tmp/agent-bench-papi-TAG.sock` is started as our
 * child (ended by pid at the end). N containers labelled io.mcp-agent.bench=TAG run `sleep`. Each
 * round, after one discarded warm-up round, the order of CLI and API alternating:
 *   - start:   a killed container started: `podman start NAME` vs `POST /containers/NAME/start`;
 *              call time (issued -> returned) and issued -> podman's `start` event (its own Time).
 *   - list:    `podman ps -a --format json --filter label=…` vs `GET /containers/json?all=true&filters=…`.
 *   - inspect: `podman inspect NAME` vs `GET /containers/NAME/json`.
 *   - events:  one `podman kill`; its `died` event as read from a `podman events` CLI stream and from
 *              `GET /events?stream=true`, both open at once: delivery = read time - the event's Time.
 * The API client keeps its connections alive (one pool), as a long-running agent would.
 * Cleanup always runs (finally, SIGINT, SIGTERM): containers by label, the service and streams by pid,
 * the socket file removed.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ChildTracker, cleanUpOnSignals } from './lib/children.js';
import { nowMs, parsePodmanTime, PodmanEventTap } from './lib/events.js';
import { PodmanApi } from './lib/podman-api.js';
import { median, r1, r2 } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ROUNDS = Number(process.env.BENCH_PODMAN_API_ROUNDS ?? 10);
const COUNT = Number(process.env.BENCH_PODMAN_API_CONTAINERS ?? 5);
const WARMUP = 1;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('BENCH_PODMAN_API_ROUNDS must be a whole number >= 1');
if (!Number.isInteger(COUNT) || COUNT < 1) throw new Error('BENCH_PODMAN_API_CONTAINERS must be a whole number >= 1');
const IMAGE = 'localhost/agent-busybox:latest';
const FLAGS = ['--runtime', 'runc', '--init', '--network', 'none', '--pull', 'never', '--restart', 'no', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];

const tag = randomBytes(3).toString('hex');
const P = `pa${tag}`;
const LABEL = `io.mcp-agent.bench=${tag}`;
const socket = `/tmp/agent-bench-papi-${tag}.sock`;
const names = Array.from({ length: COUNT }, (_, i) => `${P}-c${i}`);
const log = (msg: string): void => void process.stderr.write(`podman-api bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const children = new ChildTracker({ cwd: ROOT, env: process.env });
const podman = (args: string[]): Promise<{ ms: number; stdout: string }> => children.must('podman', args, 60_000);
const api = new PodmanApi(socket);
const tap = new PodmanEventTap([P]);
let endApiStream: (() => void) | undefined;

let cleaning: Promise<boolean> | undefined;
const cleanup = (): Promise<boolean> => {
  cleaning ??= (async () => {
    endApiStream?.();
    api.close();
    tap.stop();
    const ids = (await children.run('podman', ['ps', '-a', '-q', '--filter', `label=${LABEL}`])).stdout.split('\n').filter(Boolean);
    if (ids.length) await children.run('podman', ['rm', '--force', '--time', '0', ...ids], { timeoutMs: 120_000 });
    await children.endAll(10_000); // the service and the CLI event stream, by pid
    rmSync(socket, { force: true });
    const left = (await children.run('podman', ['ps', '-a', '-q', '--filter', `label=${LABEL}`])).stdout.split('\n').filter(Boolean);
    log(`cleanup: ${ids.length} container(s) removed, ${left.length} left; service ended; socket ${existsSync(socket) ? 'STILL PRESENT' : 'removed'}`);
    return left.length === 0 && !existsSync(socket);
  })();
  return cleaning;
};
const signals = cleanUpOnSignals(log, cleanup);
// A crash outside the main flow (an 'error' event nobody handles) must not leave anything behind either.
process.on('uncaughtException', (err) => {
  process.stderr.write(`podman-api bench: uncaught: ${err.stack ?? String(err)}\n`);
  void cleanup().finally(() => process.exit(1));
});

interface Sample {
  cli: number;
  api: number;
}
type Probe = 'start_call' | 'start_event' | 'list' | 'inspect' | 'died_delivery';
const samples: Record<Probe, Sample[]> = { start_call: [], start_event: [], list: [], inspect: [], died_delivery: [] };

const filters = encodeURIComponent(JSON.stringify({ label: [LABEL] }));

async function killed(name: string): Promise<void> {
  const t0 = nowMs();
  await podman(['kill', name]);
  await tap.next(name, 'died', t0 - 1);
  await sleep(200);
}

/** One start, list and inspect by `how`; returns the figures. */
async function probe(how: 'cli' | 'api', name: string): Promise<Record<'start_call' | 'start_event' | 'list' | 'inspect', number>> {
  await killed(name);
  const t0 = nowMs();
  if (how === 'cli') await podman(['start', name]);
  else await api.call('POST', `/containers/${name}/start`);
  const startCall = nowMs() - t0;
  const startEvent = (await tap.next(name, 'start', t0)).at - t0;
  await sleep(100);
  let t = nowMs();
  const listed = how === 'cli' ? (await podman(['ps', '-a', '--format', 'json', '--filter', `label=${LABEL}`])).stdout : (await api.call('GET', `/containers/json?all=true&filters=${filters}`)).body;
  const list = nowMs() - t;
  if ((JSON.parse(listed) as unknown[]).length !== COUNT) throw new Error(`${how} list: expected ${COUNT} containers, got ${listed.slice(0, 300)}`);
  await sleep(100);
  t = nowMs();
  const inspected = how === 'cli' ? (await podman(['inspect', name])).stdout : (await api.call('GET', `/containers/${name}/json`)).body;
  const inspect = nowMs() - t;
  if (!inspected.includes(name)) throw new Error(`${how} inspect of ${name}: ${inspected.slice(0, 300)}`);
  return { start_call: startCall, start_event: startEvent, list, inspect };
}

/** The `died` events read from the API stream: name -> [read time, event time]. */
const apiDied = new Map<string, Array<{ readAt: number; at: number }>>();

let failed = false;
try {
  log(`tag ${tag}; socket ${socket}; ${COUNT} containers; ${ROUNDS} rounds`);
  const service = spawn('podman', ['system', 'service', '--time', '0', `unix://${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.track(service);
  const up0 = nowMs();
  for (;;) {
    if (service.exitCode !== null) throw new Error(`podman system service exited ${service.exitCode}`);
    if (await api.call('GET', '/_ping').then(() => true, () => false)) break;
    if (nowMs() - up0 > 30_000) throw new Error('podman system service did not answer within 30 s');
    await sleep(20);
  }
  log(`service pid ${service.pid} answers after ${(nowMs() - up0).toFixed(0)} ms`);
  await tap.start(children, process.env);
  endApiStream = await api.events({ type: ['container'], label: [LABEL] }, (e) => {
    const readAt = nowMs();
    const actor = e.Actor as { Attributes?: Record<string, string> } | undefined;
    const name = actor?.Attributes?.name;
    if (e.Action !== 'died' || !name) return;
    const at = typeof e.timeNano === 'number' ? e.timeNano / 1e6 : typeof e.time === 'string' ? parsePodmanTime(e.time) : Number(e.time) * 1000;
    apiDied.set(name, [...(apiDied.get(name) ?? []), { readAt, at }]);
  });
  for (const n of names) await podman(['run', '--detach', '--name', n, '--label', LABEL, ...FLAGS, IMAGE, 'sleep', '2147483647']);

  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    if (signals.interrupted) throw new Error('interrupted');
    const name = names[i % COUNT]!;
    const order: Array<'cli' | 'api'> = i % 2 === 0 ? ['cli', 'api'] : ['api', 'cli'];
    const got: Partial<Record<'cli' | 'api', Awaited<ReturnType<typeof probe>>>> = {};
    for (const how of order) got[how] = await probe(how, name);
    // event delivery: one kill, both streams open
    const cliSeen: { readAt?: number } = {};
    const t0 = nowMs();
    const died = tap.next(name, 'died', t0 - 1).then((e) => (cliSeen.readAt = nowMs(), e));
    await podman(['kill', name]);
    const ev = await died;
    const deadline = nowMs() + 10_000;
    let fromApi: { readAt: number; at: number } | undefined;
    while (!(fromApi = apiDied.get(name)?.find((x) => x.at >= t0 - 1)) && nowMs() < deadline) await sleep(1);
    if (!fromApi) throw new Error(`the API event stream did not deliver the died event of ${name}`);
    await api.call('POST', `/containers/${name}/start`);
    if (i < WARMUP) continue;
    for (const k of ['start_call', 'start_event', 'list', 'inspect'] as const) samples[k].push({ cli: got.cli![k], api: got.api![k] });
    samples.died_delivery.push({ cli: cliSeen.readAt! - ev.at, api: fromApi.readAt - fromApi.at });
    log(`round ${i}: start ${got.cli!.start_call.toFixed(0)}/${got.api!.start_call.toFixed(0)} ms, list ${got.cli!.list.toFixed(0)}/${got.api!.list.toFixed(0)}, inspect ${got.cli!.inspect.toFixed(0)}/${got.api!.inspect.toFixed(0)}, died delivered ${(cliSeen.readAt! - ev.at).toFixed(1)}/${(fromApi.readAt - fromApi.at).toFixed(1)} (cli/api)`);
  }

  const labels: Record<Probe, string> = {
    start_call: 'start a killed container (call issued -> returned)',
    start_event: 'start: issued -> podman `start` event',
    list: 'list by label (`ps -a --format json --filter label=`)',
    inspect: 'inspect one container',
    died_delivery: '`died` event: its Time -> read from the stream',
  };
  console.log(`podman CLI vs REST API (podman system service, unix socket, keep-alive): ${ROUNDS} interleaved rounds after ${WARMUP} warm-up, ${COUNT} containers (node ${process.version})\n`);
  console.log('| operation | CLI median | API median | CLI / API | per round CLI | per round API |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  const json: Record<string, unknown> = { bench: 'podman-api', rounds: ROUNDS, containers: COUNT };
  for (const k of Object.keys(samples) as Probe[]) {
    const cli = samples[k].map((s) => s.cli);
    const ap = samples[k].map((s) => s.api);
    console.log(`| ${labels[k]} | ${median(cli).toFixed(1)} ms | ${median(ap).toFixed(1)} ms | ${(median(cli) / median(ap)).toFixed(1)}x | ${cli.map((x) => x.toFixed(0)).join(' ')} | ${ap.map((x) => x.toFixed(0)).join(' ')} |`);
    json[k] = { cli_ms: cli.map(r1), api_ms: ap.map(r1), cli_median: r1(median(cli)), api_median: r1(median(ap)), ratio: r2(median(cli) / median(ap)) };
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify(json));
} catch (err) {
  failed = true;
  if (!signals.interrupted) process.stderr.write(`podman-api bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  if (!(await cleanup())) failed = true;
}
if (failed) process.exitCode = 1;
