/** Human output for the CLI: tables and relative times. `--json` bypasses all of this. */
import Table from 'cli-table3';
import type { StatusReport } from '../agent/status.js';
import type { Action } from '../agent/planner.js';
import type { AgentEvent } from '../registry/index.js';

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

export function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [], compact: true }, chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' } });
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  const lastPass = r.agent.last_pass_at ? `last pass ${ago(r.agent.last_pass_at)}` : '';
  const agent = r.agent.running
    ? `running (${[`pid ${r.agent.pid}`, lastPass].filter(Boolean).join(', ')})`
    : r.agent.once_in_progress
      ? `run --once in progress (pid ${r.agent.pid})`
      : `not running${lastPass ? ` (${lastPass})` : ''}`;
  lines.push(`registry: ${r.registry.path}${r.registry.writable ? '' : ` NOT WRITABLE (${r.registry.reason}; a running agent keeps its bookkeeping in memory)`}`);
  lines.push(`agent:    ${agent}`);
  const rts = Object.entries(r.runtimes).map(([k, v]) => (v.ok ? `${k} ok` : `${k} UNAVAILABLE (${v.error})`));
  lines.push(`runtimes: ${rts.join('; ')}`);
  if (r.components.length === 0) {
    lines.push('', 'no components in the registry (agent apply -f FILE adds a service)');
    return lines.join('\n');
  }
  const t = table(['COMPONENT', 'RUNTIME', 'DESIRED', 'OBSERVED', 'DRIFT', 'REASON', 'ADDRESS', 'RESTARTS', 'LAST EVENT']);
  for (const c of r.components) {
    const ev = c.last_event ? `${c.last_event.action} ${c.last_event.outcome} ${ago(c.last_event.at)}` : '-';
    const reason = [c.reason, c.next_action ? `next: ${c.next_action}` : ''].filter(Boolean).join('; ');
    const address = c.address ? `${c.address}${c.network ? ` (${c.network})` : ''}` : '-';
    t.push([`${c.service}/${c.component}`, c.runtime ?? '-', c.desired, c.observed, c.drift, reason || '-', address, String(c.restarts), ev]);
  }
  lines.push('', t.toString());
  const summary = Object.entries(r.summary).map(([k, n]) => `${n} ${k}`).join(', ');
  lines.push('', `${r.components.length} rows: ${summary}`);
  return lines.join('\n');
}

export function formatPlan(actions: Array<Pick<Action, 'type' | 'workload' | 'runtime' | 'reason'>>): string {
  if (actions.length === 0) return 'nothing to do: the node matches the registry';
  const t = table(['ACTION', 'WORKLOAD', 'RUNTIME', 'REASON']);
  for (const a of actions) t.push([a.type, a.workload, a.runtime, a.reason]);
  return `${t.toString()}\n\n${actions.length} action(s)`;
}

export function formatEvents(events: AgentEvent[]): string {
  if (events.length === 0) return 'no events';
  const t = table(['TIME', 'COMPONENT', 'ACTION', 'OUTCOME', 'REASON', 'MESSAGE']);
  for (const e of [...events].reverse()) t.push([e.at, e.service ? `${e.service}/${e.component}` : e.workload ?? '-', e.action, e.outcome, e.reason || '-', e.message || '-']);
  return t.toString();
}
