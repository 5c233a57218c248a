/**
 * `npm run chaos`: runs every scenario (or those named on the command line: kill-storm,
 * write-storm, fuzz, faults) against the built CLI, prints each one's figures and invariant
 * counts, and exits 1 when any invariant was violated. Sizes: CHAOS_ITERATIONS, CHAOS_SEED,
 * CHAOS_FUZZ_RUNS, CHAOS_VMS. Everything started is removed at the end and on SIGINT/SIGTERM.
 */
import { performance } from 'node:perf_hooks';
import { sizesFromEnv, type ChaosSizes } from './lib/config.js';
import { Janitor } from './lib/janitor.js';
import type { Tally } from './lib/report.js';
import { runKillStorm } from './kill-storm.js';
import { runWriteStorm } from './write-storm.js';
import { runFuzz } from './fuzz.js';
import { runFaults } from './faults.js';

type Scenario = (j: Janitor, sizes: ChaosSizes, log: (m: string) => void) => Promise<Tally>;

const SCENARIOS: Record<string, Scenario> = {
  'kill-storm': runKillStorm,
  'write-storm': runWriteStorm,
  fuzz: runFuzz,
  faults: runFaults,
};

const log = (m: string): void => void process.stdout.write(`${m}\n`);
const names = process.argv.slice(2);
for (const n of names) {
  if (!SCENARIOS[n]) {
    process.stderr.write(`chaos: unknown scenario '${n}' (known: ${Object.keys(SCENARIOS).join(', ')})\n`);
    process.exit(2);
  }
}
const sizes = sizesFromEnv({ iterations: 20, seed: 1, fuzzRuns: 1000, vms: 1 });
log(`chaos: iterations ${sizes.iterations}, seed ${sizes.seed}, fuzz runs ${sizes.fuzzRuns}, VMs ${sizes.vms}`);
const janitor = new Janitor();
const signals = janitor.onSignals(log);
let violations = 0;
try {
  for (const name of names.length > 0 ? names : Object.keys(SCENARIOS)) {
    if (signals.interrupted) break;
    const t0 = performance.now();
    let tally: Tally;
    try {
      tally = await SCENARIOS[name]!(janitor, sizes, log);
    } finally {
      await janitor.cleanup();
    }
    tally.figure('scenario time (s)', ((performance.now() - t0) / 1000).toFixed(1));
    log(tally.format());
    violations += tally.total();
  }
} finally {
  await janitor.cleanup();
}
log(`chaos: ${violations === 0 ? 'every invariant held in every scenario' : `${violations} violation(s)`} (seed ${sizes.seed})`);
process.exit(violations === 0 ? 0 : 1);
