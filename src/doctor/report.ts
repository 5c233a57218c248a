/**
 * `agent doctor`'s report: the checks' results in a fixed order, the summary, the exit code, and
 * the two ways of printing it (a table for people, JSON for scripts). Pure: no I/O, no clock.
 * The invariant: a failing check makes the exit code 1; warnings never do.
 */

export const CHECK_STATUSES = ['ok', 'warn', 'fail'] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/** What one check found. */
export interface CheckResult {
  /** Stable, for scripts: `podman`, `registry`, ... (CHECK_ORDER). */
  name: string;
  status: CheckStatus;
  /** One line: what was found. */
  detail: string;
  /** One line: what to do about it; only when the status is not ok. */
  fix?: string | undefined;
  /** Extra data for scripts and tests (the throwaway container's name, free bytes, ...). */
  facts?: Record<string, string | number | boolean | null> | undefined;
}

/**
 * The order of the report: the ground first (node, registry), then what runs containers, then
 * what runs VMs, then the network and the disk, then how the agent is run (its systemd unit). A check not listed here goes last, by name.
 */
export const CHECK_ORDER = ['node', 'registry', 'podman', 'ulimits', 'qemu', 'accelerator', 'net-tools', 'bridge', 'images', 'disk', 'systemd'] as const;

export interface DoctorReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  summary: Record<CheckStatus, number>;
  checks: CheckResult[];
}

function rank(name: string): number {
  const i = (CHECK_ORDER as readonly string[]).indexOf(name);
  return i === -1 ? CHECK_ORDER.length : i;
}

/** The results in report order; a fix is kept only where the status is not ok. */
export function buildReport(results: CheckResult[]): DoctorReport {
  const checks = [...results]
    .sort((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((c) => (c.status === 'ok' ? { ...c, fix: undefined } : c));
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { ok: summary.fail === 0, summary, checks };
}

/** 1 when any check failed, 0 otherwise (warnings do not fail). */
export function exitCodeOf(report: DoctorReport): number {
  return report.ok ? 0 : 1;
}

/** The JSON document of `doctor --json`: every key present (null where there is nothing). */
export function reportJson(report: DoctorReport): string {
  return JSON.stringify(
    {
      ok: report.ok,
      summary: report.summary,
      checks: report.checks.map((c) => ({ name: c.name, status: c.status, detail: c.detail, fix: c.fix ?? null, facts: c.facts ?? {} })),
    },
    null,
    2,
  );
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

/** One line per check, its fix on the next line, then the summary line. */
export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length), 4);
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${MARK[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`);
    if (c.fix) lines.push(`${' '.repeat(width + 8)}fix: ${c.fix}`);
  }
  const { ok, warn, fail } = report.summary;
  lines.push('', `${ok} ok, ${warn} warning${warn === 1 ? '' : 's'}, ${fail} failed${fail > 0 ? ' (exit 1)' : ''}`);
  return lines.join('\n');
}

/** A check that threw (or ran out of time) instead of answering: its own fail, never a crash. */
export function crashedCheck(name: string, err: unknown): CheckResult {
  const message = err instanceof Error ? err.message : String(err);
  return { name, status: 'fail', detail: `the check could not finish: ${message.split('\n')[0]}`, fix: 'run it again; if it persists, the message above names what hangs or breaks' };
}
