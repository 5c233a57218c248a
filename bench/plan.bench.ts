/**
 * Benchmark (not a test): the pure planner over 100, 1,000 and 10,000 components.
 *
 *   node --import tsx bench/plan.bench.ts          (env: BENCH_ROUNDS, BENCH_SIZES=100,1000,10000)
 *
 * The input is a realistic, deterministic mix (seeded PRNG): services of up to 100 components,
 * most in sync with an instance record, some running but unrecorded (adopt), some missing (a few
 * of those backing off), some with a changed spec, some stopped (restart) or exited (left alone),
 * some settled (failures > 0, stable long enough), and orphans of a service that is gone.
 *
 * The machine is noisy, so every figure is also given as a ratio against bare baselines measured
 * in the same rounds, interleaved with plan():
 *   - json: JSON.parse(JSON.stringify(input)) of the same PlanInput (touches every byte of it);
 *   - map:  a bare loop building a Map of the observed items by component key (plan's first step).
 * specHash over every desired spec is timed too, as a breakdown (plan computes one per component).
 * Prints a table, then one JSON line with every figure. No assertions on timings.
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { specHash } from '../src/identity.js';
import { plan, type PlanInput } from '../src/agent/planner.js';
import { keyString } from '../src/errors.js';
import type { ComponentSpec } from '../src/manifest/schema.js';
import type { DesiredComponent, DesiredService, InstanceRecord } from '../src/registry/index.js';
import type { Observed } from '../src/runtime/types.js';
import { record } from '../test/helpers/spec.js';

// A collectable heap between samples makes samples comparable; `gc` is not exposed by default.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const SIZES = (process.env.BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
const SAMPLE_TARGET_MS = 25; // each sample repeats the function until about this long
const WARMUP_MS = 400;
const SERVICE_SIZE = 100; // the manifest schema's limit per service
const NOW = new Date('2025-06-01T12:00:00.000Z');
const STABLE_AFTER_MS = 30_000;

/** mulberry32: small, fast, deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'in-sync' | 'adopt' | 'settled' | 'missing' | 'backoff' | 'spec-changed' | 'stopped' | 'exited';
/** Share of each kind among the desired components (sums to 1). Orphans come on top. */
const MIX: Array<[Kind, number]> = [
  ['in-sync', 0.78],
  ['adopt', 0.03],
  ['settled', 0.02],
  ['missing', 0.05],
  ['backoff', 0.01],
  ['spec-changed', 0.06],
  ['stopped', 0.03],
  ['exited', 0.02],
];
const ORPHAN_SHARE = 0.03;

interface Built {
  input: PlanInput;
  counts: Record<string, number>;
  expected: { actions: number; settled: number; assessments: number };
}

function hex(r: () => number, len: number): string {
  let s = '';
  while (s.length < len) s += Math.floor(r() * 0x100000000).toString(16).padStart(8, '0');
  return s.slice(0, len);
}

function shuffle<T>(r: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function buildInput(n: number, seed = 42): Built {
  const r = rng(seed + n);
  const services: DesiredService[] = [];
  const components: DesiredComponent[] = [];
  const observed: Observed[] = [];
  const instances: InstanceRecord[] = [];
  const counts: Record<string, number> = {};

  // Kinds assigned by exact shares, then shuffled, so every size has the same mix.
  const kinds: Kind[] = [];
  for (const [k, share] of MIX) for (let i = 0; i < Math.round(n * share); i++) kinds.push(k);
  while (kinds.length < n) kinds.push('in-sync');
  kinds.length = n;
  shuffle(r, kinds);

  const old = new Date(NOW.getTime() - 3_600_000).toISOString();
  const recent = new Date(NOW.getTime() - 5_000).toISOString();
  let expectedActions = 0;
  let expectedSettled = 0;

  for (let i = 0; i < n; i++) {
    const kind = kinds[i]!;
    counts[kind] = (counts[kind] ?? 0) + 1;
    const service = `svc${String(Math.floor(i / SERVICE_SIZE)).padStart(4, '0')}`;
    if (i % SERVICE_SIZE === 0) services.push({ name: service, active: true, comment: '', updatedAt: old });
    const name = `c${String(i % SERVICE_SIZE).padStart(3, '0')}`;
    const workload = `${service}-${name}`;
    const spec: ComponentSpec = {
      service,
      name,
      runtime: 'container',
      image: 'localhost/agent-busybox:latest',
      cmd: i % 3 === 0 ? ['sleep', '2147483647'] : ['sh', '-c', `echo ${name}; exec sleep ${1000 + i}`],
      env: i % 2 === 0 ? { GREETING: 'hi', INDEX: String(i) } : {},
      memory: i % 4 === 0 ? 64 : undefined,
      vcpus: undefined,
      network: 'none',
      ports: [],
      volumes: i % 10 === 0 ? [{ source: `/srv/${service}/${name}`, target: '/data', read_only: false }] : [],
      restart: kind === 'exited' ? 'never' : 'always',
    };
    components.push({ service, component: name, valid: true, spec });
    const hash = specHash(spec);
    const id = hex(r, 64);
    const startedAt = kind === 'settled' ? old : recent;
    const obs = (state: Observed['state'], h: string): Observed => ({
      runtime: 'container',
      name: workload,
      id,
      key: { service, component: name },
      specHash: h,
      state,
      exitCode: state === 'exited' ? (kind === 'exited' ? 0 : 137) : undefined,
      startedAt,
      address: undefined,
    });
    const rec = (over: Partial<InstanceRecord> = {}): InstanceRecord => record(spec, { handle: id, startedAt, ...over });
    switch (kind) {
      case 'in-sync':
        observed.push(obs('running', hash));
        instances.push(rec(i % 7 === 0 ? { restarts: 2 } : {}));
        break;
      case 'adopt':
        observed.push(obs('running', hash));
        expectedActions++;
        break;
      case 'settled':
        observed.push(obs('running', hash));
        instances.push(rec({ failures: 2, restarts: 2, lastFailureAt: old, nextAttemptAt: old, lastError: 'exited (code 1)' }));
        expectedSettled++;
        break;
      case 'missing':
        if (i % 2 === 0) instances.push(rec({ handle: hex(r, 64) })); // it ran once, then vanished
        expectedActions++;
        break;
      case 'backoff':
        instances.push(rec({ handle: null, failures: 3, lastFailureAt: recent, nextAttemptAt: new Date(NOW.getTime() + 60_000).toISOString(), lastError: 'podman run: image not known' }));
        break;
      case 'spec-changed':
        observed.push(obs('running', hex(r, 64)));
        instances.push(rec());
        expectedActions++;
        break;
      case 'stopped':
        observed.push(obs('exited', hash));
        instances.push(rec());
        expectedActions++;
        break;
      case 'exited':
        observed.push(obs('exited', hash));
        instances.push(rec());
        break;
    }
  }

  // Orphans: a deleted service's containers, still labelled as ours.
  const orphans = Math.round(n * ORPHAN_SHARE);
  for (let i = 0; i < orphans; i++) {
    const key = { service: 'gone', component: `o${i}` };
    observed.push({ runtime: 'container', name: `gone-o${i}`, id: hex(r, 64), key, specHash: hex(r, 64), state: 'running', exitCode: undefined, startedAt: recent, address: undefined });
  }
  counts.orphan = orphans;
  expectedActions += orphans;
  shuffle(r, observed); // podman lists in its own order, not the registry's

  return {
    input: { desired: { services, components }, observed: { container: { ok: true, items: observed } }, instances, now: NOW, stableAfterMs: STABLE_AFTER_MS },
    counts,
    expected: { actions: expectedActions, settled: expectedSettled, assessments: n + orphans },
  };
}

// ---- timing -------------------------------------------------------------------------------

let sink = 0; // keeps results observable so nothing is optimised away

type Fn = () => number;

function calibrate(fn: Fn): number {
  const t0 = performance.now();
  let calls = 0;
  while (performance.now() - t0 < WARMUP_MS || calls < 5) {
    sink += fn();
    calls++;
  }
  const per = (performance.now() - t0) / calls;
  return Math.max(1, Math.ceil(SAMPLE_TARGET_MS / per));
}

/** One sample: ms per call, averaged over `reps` calls. */
function sample(fn: Fn, reps: number): number {
  gc();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) sink += fn();
  return (performance.now() - t0) / reps;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const min = (xs: number[]): number => Math.min(...xs);
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface Stat {
  median_ms: number;
  min_ms: number;
  reps: number;
}

interface SizeResult {
  n: number;
  observed: number;
  instances: number;
  mix: Record<string, number>;
  actions: number;
  plan: Stat;
  json_baseline: Stat;
  map_baseline: Stat;
  spec_hash_all: Stat;
  plan_over_json: number;
  plan_over_map: number;
  /** Median of the per-round ratios: each ratio comes from samples taken back to back. */
  plan_over_json_paired: number;
  us_per_component: number;
}

function benchSize(n: number): SizeResult {
  const { input, counts, expected } = buildInput(n);
  const items = input.observed.container?.ok ? input.observed.container.items : [];
  const specs = input.desired.components.flatMap((c) => (c.valid ? [c.spec] : []));

  // Sanity (not timed): the input exercises the paths it claims to.
  const check = plan(input);
  if (check.assessments.length !== expected.assessments || check.actions.length !== expected.actions || check.housekeeping.filter((h) => h.type === 'reset-failures').length !== expected.settled) {
    throw new Error(
      `plan() on ${n} components: expected ${JSON.stringify(expected)}, got assessments=${check.assessments.length} actions=${check.actions.length} settled=${check.housekeeping.filter((h) => h.type === 'reset-failures').length}`,
    );
  }

  const fns: Record<'plan' | 'json' | 'map' | 'hash', Fn> = {
    plan: () => plan(input).actions.length,
    json: () => (JSON.parse(JSON.stringify(input)) as PlanInput).instances.length,
    map: () => {
      const m = new Map<string, Observed[]>();
      for (const o of items) {
        const k = o.key ? keyString(o.key) : `?${o.name}`;
        const list = m.get(k) ?? [];
        list.push(o);
        m.set(k, list);
      }
      return m.size;
    },
    hash: () => {
      let x = 0;
      for (const s of specs) x += specHash(s).length;
      return x;
    },
  };
  const names = Object.keys(fns) as Array<keyof typeof fns>;
  const reps = Object.fromEntries(names.map((k) => [k, calibrate(fns[k])])) as Record<keyof typeof fns, number>;
  const samples = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<keyof typeof fns, number[]>;
  const paired: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no function always runs right after another.
    const order = names.map((_, i) => names[(i + round) % names.length]!);
    const got: Partial<Record<keyof typeof fns, number>> = {};
    for (const k of order) {
      const ms = sample(fns[k], reps[k]);
      samples[k].push(ms);
      got[k] = ms;
    }
    paired.push(got.plan! / got.json!);
  }
  const stat = (k: keyof typeof fns): Stat => ({ median_ms: r3(median(samples[k])), min_ms: r3(min(samples[k])), reps: reps[k] });
  const planMed = median(samples.plan);
  return {
    n,
    observed: items.length,
    instances: input.instances.length,
    mix: counts,
    actions: check.actions.length,
    plan: stat('plan'),
    json_baseline: stat('json'),
    map_baseline: stat('map'),
    spec_hash_all: stat('hash'),
    plan_over_json: r2(planMed / median(samples.json)),
    plan_over_map: r2(planMed / median(samples.map)),
    plan_over_json_paired: r2(median(paired)),
    us_per_component: r2((planMed * 1000) / n),
  };
}

// ---- run ----------------------------------------------------------------------------------

const results: SizeResult[] = [];
for (const n of SIZES) {
  process.stderr.write(`plan bench: ${n} components...\n`);
  results.push(benchSize(n));
}

const pad = (s: string | number, w: number): string => String(s).padStart(w);
const rows: string[] = [];
rows.push(
  `${pad('components', 10)} ${pad('observed', 8)} ${pad('actions', 7)} | ${pad('plan med', 9)} ${pad('plan min', 9)} ${pad('us/comp', 7)} | ${pad('json med', 9)} ${pad('map med', 8)} ${pad('hash med', 9)} | ${pad('plan/json', 9)} ${pad('paired', 6)} ${pad('plan/map', 8)}`,
);
for (const x of results) {
  rows.push(
    `${pad(x.n, 10)} ${pad(x.observed, 8)} ${pad(x.actions, 7)} | ${pad(x.plan.median_ms.toFixed(3), 9)} ${pad(x.plan.min_ms.toFixed(3), 9)} ${pad(x.us_per_component.toFixed(2), 7)} | ${pad(x.json_baseline.median_ms.toFixed(3), 9)} ${pad(x.map_baseline.median_ms.toFixed(3), 8)} ${pad(x.spec_hash_all.median_ms.toFixed(3), 9)} | ${pad(x.plan_over_json.toFixed(2), 9)} ${pad(x.plan_over_json_paired.toFixed(2), 6)} ${pad(x.plan_over_map.toFixed(1), 8)}`,
  );
}

/** How each figure grows from one size to the next (10x more components: 10.0 is linear). */
const growth: Record<string, Record<string, number>> = {};
for (let i = 1; i < results.length; i++) {
  const a = results[i - 1]!;
  const b = results[i]!;
  growth[`${b.n}/${a.n}`] = {
    size: r2(b.n / a.n),
    plan_median: r2(b.plan.median_ms / a.plan.median_ms),
    plan_min: r2(b.plan.min_ms / a.plan.min_ms),
    json_median: r2(b.json_baseline.median_ms / a.json_baseline.median_ms),
    map_median: r2(b.map_baseline.median_ms / a.map_baseline.median_ms),
    plan_over_json: r2(b.plan_over_json / a.plan_over_json),
  };
}

console.log(`plan() benchmark: ${ROUNDS} rounds per size, each sample ~${SAMPLE_TARGET_MS} ms of repeated calls, ms per call (node ${process.version})`);
console.log(`mix per size: ${MIX.map(([k, s]) => `${k} ${Math.round(s * 100)}%`).join(', ')}, + orphans ${Math.round(ORPHAN_SHARE * 100)}%`);
console.log(rows.join('\n'));
console.log('growth (x10 components; 10.0 = linear):');
for (const [k, g] of Object.entries(growth)) {
  console.log(`  ${pad(k, 10)}  plan median x${g.plan_median!.toFixed(2)}  plan min x${g.plan_min!.toFixed(2)}  json x${g.json_median!.toFixed(2)}  map x${g.map_median!.toFixed(2)}  plan/json x${g.plan_over_json!.toFixed(2)}`);
}
console.log(
  JSON.stringify({
    bench: 'plan',
    node: process.version,
    rounds: ROUNDS,
    sample_target_ms: SAMPLE_TARGET_MS,
    sizes: results,
    growth,
    sink: sink > 0,
  }),
);
