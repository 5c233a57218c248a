/**
 * What a scenario reports: its figures (iterations, kills, inputs, time to converge) and, per
 * invariant, the violations found. An invariant that was checked and held shows 0: a scenario
 * declares every invariant it checks up front, so "0" never means "not looked at".
 */

export class Tally {
  private readonly violations = new Map<string, string[]>();
  readonly figures: Record<string, number | string> = {};

  constructor(
    readonly scenario: string,
    invariants: readonly string[],
  ) {
    for (const name of invariants) this.violations.set(name, []);
  }

  /** Declares an invariant that a check adds on the way (it still counts 0 until violated). */
  declare(invariant: string): void {
    if (!this.violations.has(invariant)) this.violations.set(invariant, []);
  }

  /** Records one violation of an invariant, with what was seen. */
  violate(invariant: string, detail: string): void {
    this.declare(invariant);
    this.violations.get(invariant)!.push(detail);
  }

  /** Records a violation when `ok` is false. */
  expect(invariant: string, ok: boolean, detail: () => string): void {
    this.declare(invariant);
    if (!ok) this.violate(invariant, detail());
  }

  figure(name: string, value: number | string): void {
    this.figures[name] = value;
  }

  add(name: string, by = 1): void {
    this.figures[name] = Number(this.figures[name] ?? 0) + by;
  }

  counts(): Record<string, number> {
    return Object.fromEntries([...this.violations].map(([k, v]) => [k, v.length]));
  }

  details(): Record<string, string[]> {
    return Object.fromEntries([...this.violations].filter(([, v]) => v.length > 0));
  }

  total(): number {
    return [...this.violations.values()].reduce((n, v) => n + v.length, 0);
  }

  /** The human report: figures, each invariant's count, the first few details, a closing line. */
  format(maxDetails = 3): string {
    const lines = [`== chaos: ${this.scenario}`];
    for (const [k, v] of Object.entries(this.figures)) lines.push(`  ${k}: ${v}`);
    lines.push('  invariants (violations):');
    for (const [k, v] of this.violations) {
      lines.push(`    ${v.length === 0 ? 'ok  ' : 'FAIL'} ${k}: ${v.length}`);
      for (const d of v.slice(0, maxDetails)) lines.push(`           - ${d.replace(/\n/g, '\n             ')}`);
      if (v.length > maxDetails) lines.push(`           … ${v.length - maxDetails} more`);
    }
    const n = this.total();
    lines.push(`== ${this.scenario}: ${n === 0 ? 'every invariant held' : `${n} violation(s) of ${Object.keys(this.details()).length} invariant(s)`}`);
    return lines.join('\n');
  }
}
