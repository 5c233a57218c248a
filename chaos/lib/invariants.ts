/**
 * The shared invariant checker, run once a node has been brought to rest (the last agent stopped,
 * a final `run --once` done): exactly one workload per desired component, nothing else left on
 * the host or in the agent's tables, every start seen from outside in the events log, and
 * `status --json` all in sync. Each invariant's name is what the report prints.
 */
import { agentHelperProcesses, podmanPs, type StatusJson, type TestNode } from '../../test/helpers/agent.js';
import { qemuProcesses, readRegistry, tapsOf, vmStateDirs, type Sightings } from './observe.js';
import type { Tally } from './report.js';

export interface DesiredWorkload {
  service: string;
  component: string;
  runtime: 'container' | 'unikernel';
}

/** Desired workloads keyed by workload name (`service-component`). */
export type Desired = Map<string, DesiredWorkload>;

export const NODE_INVARIANTS = [
  'one workload per desired component',
  'no orphan containers',
  'no leaked QEMU',
  'no leaked TAPs',
  'no leaked VM state dirs',
  'no leaked leases',
  'no watcher processes after the agent stopped',
  'no claim left after the agent stopped',
  'no stale instances rows',
  'events log complete',
  'status all in sync',
] as const;

interface EventJson {
  id: number;
  at: string;
  workload: string;
  action: string;
  outcome: string;
  message: string;
}

const STARTS = new Set(['start', 'restart', 'replace', 'adopt']);

/**
 * Every handle seen from outside must be accounted for by its own entry in the events log: an
 * entry of that workload (start, restart, replace or adopt) that names the handle; or, when the
 * outcome was never written with the id (killed in between), a distinct start-like entry without
 * an ok outcome (an error, or an intent recorded before acting) written before it was first seen.
 */
export function checkEvents(tally: Tally, events: EventJson[], sightings: Sightings): void {
  const invariant = 'events log complete';
  const starts = events.filter((e) => STARTS.has(e.action)).sort((a, b) => a.id - b.id);
  const used = new Set<number>();
  const unmatched: Array<[string, { workload: string; firstSeen: number }]> = [];
  for (const [handle, s] of sightings.byHandle) {
    const named = starts.find((e) => e.workload === s.workload && e.message.includes(handle.slice(0, 12)));
    if (named) used.add(named.id);
    else unmatched.push([handle, s]);
  }
  unmatched.sort((a, b) => a[1].firstSeen - b[1].firstSeen);
  for (const [handle, s] of unmatched) {
    const intent = starts.find((e) => !used.has(e.id) && e.workload === s.workload && e.outcome !== 'ok' && e.outcome !== 'info' && Date.parse(e.at) <= s.firstSeen + 1000);
    if (intent) used.add(intent.id);
    else {
      const mine = starts.filter((e) => e.workload === s.workload).map((e) => `${e.action}/${e.outcome}: ${e.message}`);
      tally.violate(invariant, `${s.workload} ${handle.slice(0, 12)} ran (seen ${new Date(s.firstSeen).toISOString()}) but no log entry says so; its entries: ${JSON.stringify(mine.slice(-6))}`);
    }
  }
}

export interface CheckOptions {
  /** Every workload name used during the run (TAPs are looked for under each). */
  everUsed: Iterable<string>;
  sightings: Sightings;
  status: StatusJson;
}

export async function checkNodeAtRest(node: TestNode, desired: Desired, tally: Tally, o: CheckOptions): Promise<void> {
  for (const inv of NODE_INVARIANTS) tally.declare(inv);
  const agentId = node.agentId();
  const containers = await podmanPs(agentId);
  const qemu = qemuProcesses(node);
  const reg = readRegistry(node);

  for (const [w, d] of desired) {
    if (d.runtime === 'container') {
      const mine = containers.filter((c) => c.Names[0] === w);
      tally.expect('one workload per desired component', mine.length === 1 && mine[0]!.State === 'running', () => `${w}: ${mine.length} container(s) ${JSON.stringify(mine.map((c) => c.State))}`);
    } else {
      const mine = qemu.filter((q) => q.workload === w);
      tally.expect('one workload per desired component', mine.length === 1, () => `${w}: ${mine.length} QEMU process(es) ${JSON.stringify(mine.map((q) => q.pid))}`);
    }
  }
  for (const c of containers) {
    const w = c.Names[0] ?? '(unnamed)';
    tally.expect('no orphan containers', desired.get(w)?.runtime === 'container', () => `${w} ${c.Id.slice(0, 12)} (${c.State}) is not desired`);
  }
  for (const q of qemu) {
    tally.expect('no leaked QEMU', desired.get(q.workload)?.runtime === 'unikernel', () => `QEMU pid ${q.pid} for ${q.workload} is not desired`);
  }
  for (const tap of tapsOf(o.everUsed)) tally.violate('no leaked TAPs', `${tap} exists (every VM of the run is on SLIRP)`);
  for (const d of vmStateDirs(node)) {
    tally.expect('no leaked VM state dirs', desired.get(d)?.runtime === 'unikernel', () => `vm/${d} is left for a VM that is not desired`);
  }
  const perPurpose = new Map<string, number>();
  for (const l of reg.leases) {
    const w = `${l.service}-${l.component}`;
    tally.expect('no leaked leases', desired.get(w)?.runtime === 'unikernel', () => `${l.kind} ${l.value} (${l.purpose}) held for ${w}, not a desired VM`);
    const k = `${w}/${l.purpose}`;
    perPurpose.set(k, (perPurpose.get(k) ?? 0) + 1);
  }
  for (const [k, n] of perPurpose) tally.expect('no leaked leases', n === 1, () => `${k} holds ${n} leases`);
  const watchers = agentHelperProcesses(agentId);
  tally.expect('no watcher processes after the agent stopped', watchers.length === 0, () => `${watchers.length} process(es) with MCP_AGENT_ID=${agentId} or its podman events: ${watchers.join(',')}`);
  // `run --once` leaves its heartbeat by design (status shows the last pass); the claim must go.
  tally.expect('no claim left after the agent stopped', reg.meta.reconciler === undefined, () => `meta.reconciler = ${reg.meta.reconciler}`);
  for (const i of reg.instances) {
    tally.expect('no stale instances rows', desired.has(i.workload) && i.handle !== null, () => `instances row ${i.workload} (handle ${i.handle}) has ${desired.has(i.workload) ? 'no handle' : 'no desired component'}`);
  }
  const events = JSON.parse(await node.ok(['events', '--json', '-n', '100000'])) as EventJson[];
  checkEvents(tally, events, o.sightings);

  const rows = o.status.components;
  for (const r of rows) {
    // A component of an inactive service has a row too: in sync when it is desired absent.
    tally.expect('status all in sync', r.drift === 'in-sync' && (desired.has(r.workload) || r.desired !== 'running'), () => `${r.service}/${r.component}: ${r.drift} (${r.reason})`);
  }
  for (const w of desired.keys()) tally.expect('status all in sync', rows.some((r) => r.workload === w), () => `${w} has no status row`);
}
