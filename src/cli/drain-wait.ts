/**
 * `agent drain`'s wait: after the drain is recorded, poll this node's status (from the running
 * agent over its socket, else computed live, as `agent status` does) until no workload of it runs
 * any more, or until `--deadline`. The agent does the stopping; this only watches. Progress on
 * stderr through LiveLines: one line per workload still to stop, redrawn on a terminal, a plain
 * line per change elsewhere. Without an agent nothing would ever stop, so the wait ends at once.
 */
import type { StatusReport, StatusRow } from '../agent/status.js';
import type { AgentConfig } from '../config/config.js';
import { AgentError } from '../errors.js';
import { statusNow } from './apply-wait.js';
import { withRegistry } from './common.js';
import { LiveLines } from './live-lines.js';

const POLL_MS = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Observed states of a workload that is not running: a drain has nothing left to stop. */
const STOPPED = new Set(['absent', 'exited', 'created']);

/** Workloads still running past the deadline, or with no agent to stop them. Exit 1, naming them. */
export class DrainIncompleteError extends AgentError {}

/** The rows about a workload (not a row with nothing observed), and those not stopped yet. Pure. */
export function drainRows(report: StatusReport): { rows: StatusRow[]; running: StatusRow[] } {
  const rows = report.components.filter((c) => c.observed !== 'absent' || c.drift === 'drained');
  return { rows, running: rows.filter((c) => !STOPPED.has(c.observed)) };
}

const label = (c: StatusRow): string => (c.service === '?' ? c.workload : `${c.service}/${c.component}`);

/** `web/api running`, `web/db unknown (podman cannot list)`: what is not stopped, for an error. */
export function runningText(rows: StatusRow[]): string {
  return rows.map((c) => `${label(c)} ${c.observed}${c.observed === 'unknown' ? ` (${c.reason})` : ''}`).join('; ');
}

/** One workload's progress in a few words. */
const progress = (c: StatusRow): string => (STOPPED.has(c.observed) ? 'stopped' : c.observed === 'unknown' ? `unknown (${c.reason})` : `${c.observed}, stopping`);

const agentRuns = (r: StatusReport): boolean => r.agent.running || r.agent.once_in_progress;

/**
 * Resolves with a summary line once every workload is stopped; rejects with DrainIncompleteError
 * naming what still runs when the deadline passes, or at once when no agent runs to stop it.
 */
export async function waitDrained(cfg: AgentConfig, deadlineMs: number, deadlineText: string): Promise<string> {
  const start = Date.now();
  const live = new LiveLines(process.stderr);
  try {
    return await withRegistry(cfg, async (r) => {
      for (;;) {
        const report = await statusNow(cfg, r);
        const { rows, running } = drainRows(report);
        const elapsed = Date.now() - start;
        for (const c of rows) live.set(label(c), live.tty && !STOPPED.has(c.observed) ? `${progress(c)}, ${secs(elapsed)}` : progress(c));
        if (running.length === 0) return `node drained after ${secs(elapsed)}: none of its ${rows.length} workload(s) runs${agentRuns(report) ? '' : ' (no agent is running on this registry)'}`;
        if (!agentRuns(report)) {
          throw new DrainIncompleteError(
            `drain: the node is recorded drained in ${cfg.db}, but no agent is running on this registry: nothing stops its ${running.length} running workload(s) until one runs (agent run): ${runningText(running)}`,
          );
        }
        if (elapsed >= deadlineMs) {
          throw new DrainIncompleteError(`drain: ${running.length} workload(s) still running after --deadline ${deadlineText}: ${runningText(running)}; the node stays drained (the agent keeps stopping them)`);
        }
        await sleep(Math.min(POLL_MS, Math.max(0, deadlineMs - elapsed)));
      }
    });
  } finally {
    live.finish();
  }
}
