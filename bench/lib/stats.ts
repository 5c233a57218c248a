// Small statistics the benchmarks share: the median of a sample and rounding for printed figures.

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One decimal. */
export const r1 = (x: number): number => Math.round(x * 10) / 10;
/** Two decimals. */
export const r2 = (x: number): number => Math.round(x * 100) / 100;
