/**
 * The verdict of GET /healthz, as a pure function of what the agent knows: healthy when the last
 * reconcile pass ended recently and every runtime's last listing answered. "Recently" follows the
 * resync schedule, the one pass that comes whatever happens: within 3 resync intervals (two
 * missed resyncs are bad luck, three are a stuck loop), and never less than 60 s.
 */
import { CronTime } from 'cron';

export interface HealthInput {
  now: number;
  /** When the last pass ended (ms since the epoch); undefined before the first. */
  lastPassAt: number | undefined;
  /** When the agent started: before the first pass, how long it has been trying. */
  startedAt: number;
  recentWithinMs: number;
  /** Each runtime's last listing in the agent's view. */
  runtimes: Record<string, { ok: boolean; error: string | null }>;
}

export interface HealthBody {
  ok: boolean;
  /** One sentence per thing that is wrong; empty when ok. */
  problems: string[];
  last_pass_at: string | null;
  last_pass_age_seconds: number | null;
  /** How recent the last pass must be (seconds). */
  recent_within_seconds: number;
  runtimes: Record<string, { ok: boolean; error: string | null }>;
}

export const MIN_RECENT_MS = 60_000;

/** How recent the last pass must be, from the largest gap between the resync schedule's next firings. */
export function recentWithinMs(resync: string, from = new Date()): number {
  const times = new CronTime(resync).getNextDateFrom(from);
  let prev = times.toMillis();
  let gap = 0;
  // Irregular schedules ("0 9,17 * * *") have several gaps: the largest is what may pass without a resync.
  for (let i = 0; i < 4; i++) {
    const next = new CronTime(resync).getNextDateFrom(new Date(prev)).toMillis();
    gap = Math.max(gap, next - prev);
    prev = next;
  }
  return Math.max(3 * gap, MIN_RECENT_MS);
}

export function healthVerdict(i: HealthInput): { status: 200 | 503; body: HealthBody } {
  const problems: string[] = [];
  const within = Math.round(i.recentWithinMs / 1000);
  if (i.lastPassAt === undefined) {
    problems.push(`no reconcile pass has ended yet (the agent started ${Math.round((i.now - i.startedAt) / 1000)} s ago)`);
  } else if (i.now - i.lastPassAt > i.recentWithinMs) {
    problems.push(`the last reconcile pass ended ${Math.round((i.now - i.lastPassAt) / 1000)} s ago, more than ${within} s`);
  }
  for (const [kind, r] of Object.entries(i.runtimes)) if (!r.ok) problems.push(`the ${kind} runtime does not list: ${r.error ?? 'no reason given'}`);
  const ok = problems.length === 0;
  return {
    status: ok ? 200 : 503,
    body: {
      ok,
      problems,
      last_pass_at: i.lastPassAt === undefined ? null : new Date(i.lastPassAt).toISOString(),
      last_pass_age_seconds: i.lastPassAt === undefined ? null : Math.max(0, Math.round((i.now - i.lastPassAt) / 100) / 10),
      recent_within_seconds: within,
      runtimes: i.runtimes,
    },
  };
}
