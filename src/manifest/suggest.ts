/**
 * "Did you mean": the known name closest to a mistyped one, by edit distance. Pure. Suggests only
 * when exactly one known name is nearest and near enough, so a suggestion is never a coin toss.
 */

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i]!;
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The one known name within half the longer name's length of `typo` (so `comand` finds `cmd`,
 * `imgae` finds `image`, and `foo` finds nothing), or undefined when none or several tie.
 */
export function closest(typo: string, known: readonly string[]): string | undefined {
  const lower = typo.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d > Math.max(1, Math.floor(Math.max(lower.length, k.length) / 2))) continue;
    if (d < bestDistance) [best, bestDistance, tie] = [k, d, false];
    else if (d === bestDistance) tie = true;
  }
  return tie ? undefined : best;
}
