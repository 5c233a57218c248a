/**
 * What runs, seen from outside the agent as an operator would: podman by the agent-id label,
 * QEMU by /proc (its `-name guest=W` argument), TAPs in /sys/class/net, and the registry's own
 * tables read with a read-only SQLite connection. Nothing here asks the agent.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import { podmanPs, type PodmanContainer, type TestNode } from '../../test/helpers/agent.js';
import { tapName } from '../../src/net/plan.js';

export interface QemuProcess {
  pid: number;
  workload: string;
}

function isZombie(pid: number): boolean {
  try {
    // The state follows the parenthesised comm, which may itself hold spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Live QEMU processes whose command line points into the node's directory, with their workload. */
export function qemuProcesses(node: TestNode): QemuProcess[] {
  const out: QemuProcess[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.includes('qemu-system') || !argv.some((a) => a.includes(node.dir))) continue;
    if (isZombie(Number(p))) continue;
    const name = argv[argv.indexOf('-name') + 1] ?? '';
    const workload = /guest=([^,]+)/.exec(name)?.[1] ?? '(unnamed)';
    out.push({ pid: Number(p), workload });
  }
  return out;
}

/** TAP devices present on the host for any of these workloads. */
export function tapsOf(workloads: Iterable<string>): string[] {
  const present = new Set(existsSync('/sys/class/net') ? readdirSync('/sys/class/net') : []);
  return [...workloads].map((w) => tapName(w)).filter((t) => present.has(t));
}

export function vmStateDirs(node: TestNode): string[] {
  const dir = `${node.dir}/vm`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

export interface LeaseRow {
  kind: string;
  value: string;
  service: string;
  component: string;
  purpose: string;
}

export interface InstanceRow {
  workload: string;
  service: string;
  component: string;
  runtime: string;
  handle: string | null;
}

export interface RegistryView {
  leases: LeaseRow[];
  instances: InstanceRow[];
  meta: Record<string, string>;
}

/** The agent-owned tables, read with a read-only connection (WAL: the agent is not blocked). */
export function readRegistry(node: TestNode): RegistryView {
  const db = new Database(node.db, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const meta = Object.fromEntries((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: string }>).map((r) => [r.key, r.value]));
    return {
      leases: db.prepare('SELECT kind, value, service, component, purpose FROM leases').all() as LeaseRow[],
      instances: db.prepare('SELECT workload, service, component, runtime, handle FROM instances').all() as InstanceRow[],
      meta,
    };
  } finally {
    db.close();
  }
}

export interface Sighting {
  workload: string;
  runtime: 'container' | 'unikernel';
  firstSeen: number;
}

/**
 * Every workload start seen from outside: a podman container id or a QEMU pid (as `pid:N`, the
 * agent's handle for a VM), with when it was first seen. Sampled after every kill and at the end.
 */
export class Sightings {
  readonly byHandle = new Map<string, Sighting>();

  async sample(node: TestNode): Promise<{ containers: PodmanContainer[]; qemu: QemuProcess[] }> {
    const now = Date.now();
    const containers = await podmanPs(node.agentId());
    const qemu = qemuProcesses(node);
    for (const c of containers) {
      if (!this.byHandle.has(c.Id)) this.byHandle.set(c.Id, { workload: c.Names[0] ?? '(unnamed)', runtime: 'container', firstSeen: now });
    }
    for (const q of qemu) {
      const h = `pid:${q.pid}`;
      if (!this.byHandle.has(h)) this.byHandle.set(h, { workload: q.workload, runtime: 'unikernel', firstSeen: now });
    }
    return { containers, qemu };
  }
}
