// Sizes of the chaos suite's short run in the test suite: seeded, small enough for ≤ 3 minutes in all.
import type { ChaosSizes } from '../../chaos/lib/config.js';

export const SHORT_RUN: ChaosSizes = { iterations: 3, seed: 7, fuzzRuns: 200, vms: 1 };
