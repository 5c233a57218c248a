/** Human output for the CLI: tables and relative times. `--json` bypasses all of this. */
import Table from 'cli-table3';
import { actionTarget, type PlanDocument } from '../agent/plan-report.js';
import type { StatusReport, StatusRow } from '../agent/status.js';
import type { AgentEvent } from '../registry/index.js';

export { actionJson } from '../agent/plan-report.js';

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

export interface StatusFormatOptions {
  /** Every column, nothing cut (`status --wide`). Default: the table fits STATUS_WIDTH columns. */
  wide?: boolean;
  now?: number;
}

/** One node's apply in a line, the SSH and NATS paths alike: `created 1, updated 0, unchanged 2, pruned 0 [created: web]`. */
export function applyCounts(v: { created: string[]; updated: Array<{ name: string; changes: string[] }>; unchanged: string[]; pruned: string[] }): string {
  const counts = `created ${v.created.length}, updated ${v.updated.length}, unchanged ${v.unchanged.length}, pruned ${v.pruned.length}`;
  const names = [
    v.created.length ? `created: ${v.created.join(' ')}` : '',
    v.updated.length ? `updated: ${v.updated.map((u) => `${u.name}(${u.changes.join(',')})`).join(' ')}` : '',
    v.pruned.length ? `pruned: ${v.pruned.join(' ')}` : '',
  ].filter(Boolean);
  return `${counts}${names.length ? ` [${names.join('; ')}]` : ''}`;
}

/** The default status table fits a 120-column terminal; `--wide` shows everything. */
export const STATUS_WIDTH = 120;

/** `nats nats://h:4222 bucket b node n: connected, revision 42` or `…: disconnected since <time> (…)`. */
export function sourceLine(s: NonNullable<StatusReport['source']>, now: number): string {
  const head = `nats ${s.urls.join(',')} bucket ${s.bucket} node ${s.node}`;
  const rev = s.revision === null ? 'no revision applied yet' : `revision ${s.revision}`;
  const why = s.error ? ` (${oneLine(s.error)})` : '';
  if (s.state === 'connected') return `${head}: connected, ${rev}`;
  if (s.state === 'waiting') return `${head}: connected, waiting for the bucket since ${s.since}${why}; ${rev}`;
  return `${head}: ${s.state} since ${s.since} (${ago(s.since, now)})${why}; ${rev}`;
}

/** `memory 16064/23593 MiB allocated (total 24105, reserved 512); vcpus 1/8 (2 CPUs × overcommit 4)`. */
export function resourcesLine(n: NonNullable<StatusReport['resources']>): string {
  const m = n.memory;
  const v = n.vcpus;
  return `memory ${m.allocated_mib}/${m.capacity_mib} MiB allocated (total ${m.total_mib}, reserved ${m.reserved_mib}); vcpus ${v.allocated}/${v.capacity} (${v.online_cpus} CPUs × overcommit ${v.overcommit})`;
}

export function formatStatus(r: StatusReport, opts: StatusFormatOptions = {}): string {
  const now = opts.now ?? Date.now();
  const lines: string[] = [];
  const lastPass = r.agent.last_pass_at ? `last pass ${ago(r.agent.last_pass_at, now)}` : '';
  const agent = r.agent.running
    ? `running (${[`pid ${r.agent.pid}`, lastPass].filter(Boolean).join(', ')})`
    : r.agent.once_in_progress
      ? `run --once in progress (pid ${r.agent.pid})`
      : `not running${lastPass ? ` (${lastPass})` : ''}`;
  lines.push(`registry: ${r.registry.path}${r.registry.writable ? '' : ` NOT WRITABLE (${r.registry.reason}; a running agent keeps its bookkeeping in memory)`}`);
  lines.push(`agent:    ${agent}`);
  if (r.node.drained) lines.push(`node:     ${drainedText(r.node.drained_since, now)}`);
  // How old the listing is: from a running agent, its live view's last full listing (events keep it current in between).
  const listed = (at: string | null | undefined): string => (at ? ` (listed ${ago(at, now)})` : '');
  const rts = Object.entries(r.runtimes).map(([k, v]) => (v.ok ? `${k} ok${listed(v.observed_at)}` : `${k} UNAVAILABLE (${oneLine(v.error ?? '')})`));
  const runtimes = `runtimes: ${rts.join('; ')}`;
  lines.push(opts.wide ? runtimes : cut(runtimes, STATUS_WIDTH));
  if (r.resources) lines.push(`host:     ${resourcesLine(r.resources)}`);
  if (r.source) {
    const line = `source:   ${sourceLine(r.source, now)}`;
    lines.push(opts.wide ? line : cut(line, STATUS_WIDTH));
    for (const x of r.source.rejected) lines.push(`  refused ${x.key} (revision ${x.revision}): ${oneLine(x.error)}`);
  }
  if (r.components.length === 0) {
    lines.push('', 'no components in the registry (agent apply -f FILE adds a service)');
    return lines.join('\n');
  }
  lines.push('', opts.wide ? wideTable(r.components, now) : narrowTable(r.components, now));
  const summary = Object.entries(r.summary).map(([k, n]) => `${n} ${k}`).join(', ');
  lines.push('', `${r.components.length} rows: ${summary}`);
  return lines.join('\n');
}

/** `drained since 12:03:04 (2m ago): nothing starts until agent undrain`. */
function drainedText(since: string | null, now: number): string {
  return `drained${since ? ` since ${since} (${ago(since, now)})` : ''}: workloads are stopped and nothing starts until agent undrain`;
}

/**
 * kubectl's shape: who, what runs, the drift, restarts and age, then why, cut with … to the width
 * left. The reason leaves out what DRIFT already says and the next action (`--wide` has both), and
 * keeps the last error while the component fails, also after its backoff ended.
 */
function narrowTable(rows: StatusRow[], now: number): string {
  // HEALTH only when some row has a verdict: the reason keeps its room on nodes without checks.
  const health = rows.some((c) => c.health !== null);
  const head = ['COMPONENT', 'RUNTIME', 'OBSERVED', 'DRIFT', ...(health ? ['HEALTH'] : []), 'RESTARTS', 'AGE', 'REASON'];
  const cells = rows.map((c) => [cut(`${c.service}/${c.component}`, 40), c.runtime ?? '-', c.observed, c.drift, ...(health ? [c.health ?? '-'] : []), restarts(c, now), age(c, now), shortReason(c, now)]);
  return columns(head, cells, STATUS_WIDTH, fitReason);
}

/** The reason cut to `n`, its `last error: ` label kept whole when there is room: the error is cut instead. */
function fitReason(reason: string, n: number): string {
  const label = 'last error: ';
  const at = reason.indexOf(label);
  if (reason.length <= n || at < 0 || at + label.length + 16 > n) return cutMiddle(reason, n);
  const head = reason.slice(0, at + label.length);
  return head + cutMiddle(reason.slice(head.length), n - head.length);
}

function wideTable(rows: StatusRow[], now: number): string {
  const head = ['COMPONENT', 'WORKLOAD', 'RUNTIME', 'DESIRED', 'OBSERVED', 'DRIFT', 'HEALTH', 'RESTARTS', 'AGE', 'ADDRESS', 'HANDLE', 'NEXT', 'LAST EVENT', 'REASON'];
  const cells = rows.map((c) => {
    const ev = c.last_event ? `${c.last_event.action} ${c.last_event.outcome} ${ago(c.last_event.at, now)}` : '-';
    const address = c.address ? `${c.address}${c.network ? ` (${c.network})` : ''}` : '-';
    const reason = c.last_error && !c.reason.includes(c.last_error) ? `${c.reason}; last error: ${c.last_error}` : c.reason;
    return [`${c.service}/${c.component}`, c.workload, c.runtime ?? '-', c.desired, c.observed, c.drift, c.health ?? '-', restarts(c, now), age(c, now), address, c.handle ?? '-', c.next_action ?? '-', ev, oneLine(reason) || '-'];
  });
  return columns(head, cells, Infinity);
}

/** `3 (2m ago)` when the last thing the agent did was a restart, as kubectl shows it. */
function restarts(c: StatusRow, now: number): string {
  return c.restarts > 0 && c.last_event?.action === 'restart' ? `${c.restarts} (${ago(c.last_event.at, now)})` : String(c.restarts);
}

function age(c: StatusRow, now: number): string {
  if (!c.started_at || c.observed === 'absent' || c.observed === 'unknown' || c.observed === 'exited') return '-';
  return ago(c.started_at, now).replace(/ ago$/, '');
}

/**
 * The planner's reason without its backoff clause (`failed 2x, backing off until <time> (last
 * error: …)`), which is said again here shorter: `retry in 8s`, then the last error.
 */
function shortReason(c: StatusRow, now: number): string {
  const at = c.reason.search(/(?:^|; )failed \d+x, backing off until /);
  const base = at >= 0 ? c.reason.slice(0, at) : c.reason;
  const more: string[] = [];
  if (c.backoff_until) more.push(`retry ${inTime(Date.parse(c.backoff_until) - now)}`);
  if (c.last_error && !base.includes(c.last_error)) more.push(`last error: ${c.last_error}`);
  // `not running (missing)` only repeats DRIFT: the room goes to the error.
  const parts = c.drift === 'missing' && base === 'not running (missing)' && more.length > 0 ? more : [base, ...more];
  return oneLine(parts.filter(Boolean).join('; ')) || '-';
}

/**
 * Columns two spaces apart, the last one (the reason) cut by `fit` so each line fits `width`.
 * Should the fixed columns alone be too wide, the first one is cut as well.
 */
function columns(head: string[], rows: string[][], width: number, fit: (cell: string, n: number) => string = cutMiddle): string {
  const n = head.length;
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  if (Number.isFinite(width)) {
    const fixed = () => w.slice(0, -1).reduce((a, b) => a + b, 0) + 2 * (n - 1);
    w[n - 1] = Math.max(Math.min(w[n - 1]!, width - fixed()), Math.min(w[n - 1]!, 12));
    const over = fixed() + w[n - 1]! - width;
    if (over > 0) w[0] = Math.max(head[0]!.length, w[0]! - over);
  }
  const line = (r: string[]) => r.map((cell, i) => (i === n - 1 ? fit(cell, w[i]!) : cut(cell, w[i]!).padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** Cut to `n` characters, the last one an ellipsis when anything was cut. */
export function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

/**
 * Cut from the middle: a reason starts with what is wrong and an error ends with its cause
 * (`podman run x: Error: localhost/nope:1: image not known`); both ends stay.
 */
export function cutMiddle(s: string, n: number): string {
  if (s.length <= n) return s;
  const head = Math.ceil((n - 1) * 0.4);
  return `${s.slice(0, head)}…${s.slice(s.length - (n - 1 - head))}`;
}

/** A cell is one line: an error with newlines (podman's) reads as one. */
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** `in 8s`, `in 4m 10s`, `in 2h 5m`; `now` when it is already due. */
export function inTime(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s <= 0) return 'now';
  if (s < 60) return `in ${s}s`;
  if (s < 3600) return `in ${Math.floor(s / 60)}m ${s % 60}s`;
  return `in ${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Local wall-clock time `12:03:04`, for a time within the next hours. */
export function clock(iso: string): string {
  const d = new Date(iso);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
}

/**
 * `agent plan`: the actions, then those a backoff holds back (with when they are due), then the
 * runtimes that cannot list. "Nothing to do" only when all three are empty.
 */
export function formatPlan(p: PlanDocument, opts: StatusFormatOptions = {}): string {
  const now = opts.now ?? Date.now();
  const out: string[] = [];
  if (p.actions.length > 0) {
    // Like status: the reason is cut from the middle to fit STATUS_WIDTH, whole with --wide.
    const cells = p.actions.map((a) => [a.type, actionTarget(a), a.runtime, oneLine(a.reason) || '-']);
    out.push(columns(['ACTION', 'COMPONENT', 'RUNTIME', 'REASON'], cells, opts.wide ? Infinity : STATUS_WIDTH));
  }
  const notes: string[] = [];
  for (const h of p.held) {
    const err = h.last_error ? `: ${oneLine(h.last_error)}` : '';
    notes.push(`${h.type} ${actionTarget(h)} held by backoff until ${clock(h.due_at)} (${inTime(Date.parse(h.due_at) - now)})${err}`);
  }
  for (const n of p.not_admitted) notes.push(`${n.type} ${actionTarget(n)} not admitted: ${oneLine(n.not_admitted)}`);
  for (const u of p.unknown_runtimes) {
    const which = u.components.length > 0 ? `its components are unknown and left alone: ${u.components.join(', ')}` : 'no component of the registry is on it';
    notes.push(`the ${u.runtime} runtime cannot list (${oneLine(u.error)}): ${which}`);
  }
  if (out.length === 0 && notes.length === 0) return p.drained ? 'nothing to do: the node is drained (every workload stopped; agent undrain starts them again)' : 'nothing to do: the node matches the registry';
  if (p.drained) notes.unshift('the node is drained: workloads are stopped and nothing starts until agent undrain');
  if (notes.length > 0) out.push(notes.join('\n'));
  const counts = [`${p.actions.length} action(s)`, p.held.length > 0 ? `${p.held.length} held by backoff` : '', p.not_admitted.length > 0 ? `${p.not_admitted.length} not admitted` : '', p.unknown_runtimes.length > 0 ? `${p.unknown_runtimes.length} runtime(s) unknown` : ''];
  out.push(counts.filter(Boolean).join(', '));
  return out.join('\n\n');
}

export function formatEvents(events: AgentEvent[]): string {
  if (events.length === 0) return 'no events';
  const t = table(['TIME', 'COMPONENT', 'ACTION', 'OUTCOME', 'REASON', 'MESSAGE']);
  for (const e of [...events].reverse()) t.push([e.at, e.service ? `${e.service}/${e.component}` : e.workload ?? '-', e.action, e.outcome, e.reason || '-', e.message || '-']);
  return t.toString();
}
