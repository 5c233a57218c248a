/**
 * `apply --wait`: after the write, poll this node's status (computed as `agent status` computes
 * it: from the running agent over its socket, else live) until every component of the applied services is in sync and every pruned service's
 * workloads are gone, or until `--wait-timeout`. The agent (`agent run`) does the work; this only
 * watches. Progress on stderr through LiveLines: one line per component, redrawn on a terminal,
 * a line per change elsewhere. Only drift `in-sync` counts, as in `fleet apply --wait`.
 */
import type { StatusReport, StatusRow } from '../agent/status.js';
import { buildStatus } from '../agent/status.js';
import type { AgentConfig } from '../config/config.js';
import { AgentError } from '../errors.js';
import type { Registry } from '../registry/index.js';
import { buildHost } from './compose.js';
import { withRegistry } from './common.js';
import { LiveLines } from './live-lines.js';
import { fromAgentOrLive } from './ask-agent.js';
import { statusDocument } from '../api/documents.js';

const POLL_MS = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Not every component in sync when the wait ended. Exit 1, naming them. */
export class WaitTimeoutError extends AgentError {}

export interface WaitScope {
  /** Services whose components must all be in sync. */
  services: string[];
  /** Services whose workloads must all be gone. */
  pruned: string[];
}

/** The rows the wait is about, and which of them are not settled yet. Pure. */
export function waitRows(report: StatusReport, scope: WaitScope): { rows: StatusRow[]; late: StatusRow[] } {
  const rows = report.components.filter((c) => scope.services.includes(c.service) || scope.pruned.includes(c.service));
  const late = rows.filter((c) => scope.pruned.includes(c.service) || c.drift !== 'in-sync');
  return { rows, late };
}

/** A component's state in a few words, for progress and for the timeout message. */
export function rowText(c: StatusRow): string {
  if (c.drift === 'in-sync') return 'in sync';
  const observed = c.observed && c.observed !== 'absent' ? `, ${c.observed}` : '';
  return `${c.drift}${observed}${c.reason ? ` (${c.reason})` : ''}`;
}

/** The status `agent status` would print now: the running agent's view, else computed live. */
export function statusNow(cfg: AgentConfig, r: Registry): Promise<StatusReport> {
  return fromAgentOrLive(cfg, { path: '/v1/status', schema: statusDocument }, () => {
    const host = buildHost(cfg, r.meta.agentId());
    return buildStatus(r, host.runtimes, cfg, host.hostNet);
  });
}

/** Resolves with a summary line once all is settled; rejects with WaitTimeoutError naming what is not. */
export async function waitApplied(cfg: AgentConfig, scope: WaitScope, timeoutMs: number, timeoutText: string): Promise<string> {
  const start = Date.now();
  const live = new LiveLines(process.stderr);
  let warned = false;
  let drainedWarned = false;
  try {
    return await withRegistry(cfg, async (r) => {
      for (;;) {
        const report = await statusNow(cfg, r);
        const { rows, late } = waitRows(report, scope);
        const elapsed = Date.now() - start;
        if (!report.agent.running && !report.agent.once_in_progress && !warned) {
          warned = true;
          live.above('agent: no agent is running on this registry: nothing starts what was applied until one runs (agent run)\n');
        }
        if (report.node.drained && !drainedWarned) {
          drainedWarned = true;
          live.above('agent: the node is drained: nothing starts what was applied until agent undrain\n');
        }
        for (const c of rows) live.set(`${c.service}/${c.component}`, live.tty && c.drift !== 'in-sync' ? `${rowText(c)}, ${secs(elapsed)}` : rowText(c));
        if (late.length === 0) return `in sync after ${secs(elapsed)}: ${rows.filter((c) => !scope.pruned.includes(c.service)).length} component(s) of ${scope.services.length} service(s)`;
        if (elapsed >= timeoutMs) {
          const what = late.map((c) => `${c.service}/${c.component} ${scope.pruned.includes(c.service) ? 'still there (pruned)' : rowText(c)}`).join('; ');
          const agent = (report.agent.running || report.agent.once_in_progress ? '' : ' [no agent running]') + (report.node.drained ? ' [node drained]' : '');
          throw new WaitTimeoutError(`apply --wait: ${late.length} component(s) not in sync within --wait-timeout ${timeoutText}: ${what}${agent}`);
        }
        await sleep(Math.min(POLL_MS, Math.max(0, timeoutMs - elapsed)));
      }
    });
  } finally {
    live.finish();
  }
}
