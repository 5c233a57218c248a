/**
 * Sizes and randomness of a chaos run. Every random choice comes from one seeded generator, so a
 * run that found a violation can be replayed with the same CHAOS_SEED.
 */

export interface ChaosSizes {
  /** kill -9 iterations (storm), writes per writer (write storm) scale with it. */
  iterations: number;
  seed: number;
  /** Inputs given to the in-process manifest fuzzer (the CLI sees a sample of them). */
  fuzzRuns: number;
  /** VMs in the kill storm (0 runs containers only): each boots in ~3.5 s under TCG. */
  vms: number;
}

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw}: must be a whole number ≥ 0`);
  return n;
}

/** Sizes from CHAOS_ITERATIONS, CHAOS_SEED, CHAOS_FUZZ_RUNS, CHAOS_VMS over the given defaults. */
export function sizesFromEnv(defaults: ChaosSizes): ChaosSizes {
  return {
    iterations: intFromEnv('CHAOS_ITERATIONS', defaults.iterations),
    seed: intFromEnv('CHAOS_SEED', defaults.seed),
    fuzzRuns: intFromEnv('CHAOS_FUZZ_RUNS', defaults.fuzzRuns),
    vms: intFromEnv('CHAOS_VMS', defaults.vms),
  };
}

/** mulberry32: small, fast, and good enough to pick delays and mutations reproducibly. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
