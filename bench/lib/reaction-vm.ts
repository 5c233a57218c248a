/**
 * The VM reactions of bench/reaction.bench.ts: a master's commit of a VM -> SSH ready (with the
 * agent's steps on the way), `kill -9` of its QEMU -> a new QEMU in /proc, and the bare QEMU with
 * the agent's own argument list -> SSH ready, measured with the same probe loop.
 * Invariant: every VM a round makes is gone when the round returns (the agent's deleted through
 * the registry and waited for; the bare one killed by pid).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildTracker } from './children.js';
import { nowMs } from './events.js';
import { alive, killQemus, pidSet, qemuPidsWith, watchNewQemu } from './procfs.js';
import type { ReactionNode } from './reaction-node.js';
import { bareArgs, freePort, sshReady, type VmRecordLite } from './vm.js';
import type { SshTarget } from '../../src/runtime/ssh.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface VmContext {
  node: ReactionNode;
  children: ChildTracker;
  guestImages: string;
  /** Every workload name starts with it. */
  prefix: string;
  sshProbeMs: number;
  settleMs: number;
  /** Polls until fn returns a value (fails on interrupt or a dead agent). */
  until: <T>(what: string, fn: () => T | undefined | false, timeoutMs?: number, everyMs?: number) => Promise<T>;
  vmSql: (service: string, comps: string[]) => string;
  deleteSql: (service: string) => string;
}

export interface VmAgentRound {
  totalMs: number;
  wakeMs: number | undefined;
  /** The debug line logged when the pass that planned the start had dispatched its actions. */
  passMs: number | undefined;
  launchedMs: number;
  qemuSeenMs: number;
  agentReadyMs: number;
  bannerMs: number;
  killToNewQemuMs: number;
  polls: number;
  record: VmRecordLite;
}

const vmDirOf = (node: ReactionNode, workload: string): string => join(node.dir, 'vm', workload);
const readRecord = (node: ReactionNode, workload: string): VmRecordLite | undefined => {
  try {
    return JSON.parse(readFileSync(join(vmDirOf(node, workload), 'spec.json'), 'utf8')) as VmRecordLite;
  } catch {
    return undefined;
  }
};
const readyFile = (node: ReactionNode, workload: string): number | undefined => {
  try {
    return Date.parse(readFileSync(join(vmDirOf(node, workload), 'ready'), 'utf8').trim());
  } catch {
    return undefined;
  }
};
/** The VM's QEMU (from its pidfile: the first process seen is the parent that daemonizes and exits) still runs. */
const qemuAlive = (node: ReactionNode, workload: string): boolean => {
  try {
    return alive(Number(readFileSync(join(vmDirOf(node, workload), 'qemu.pid'), 'utf8').trim()));
  } catch {
    return true; // no pidfile yet: QEMU is still starting
  }
};
const target = (x: VmContext, r: VmRecordLite, port = r.sshPort): SshTarget => ({ host: '127.0.0.1', port, user: r.sshUser, privateKey: readFileSync(join(x.guestImages, 'id_ed25519')), hostKey: r.hostKey });

export async function vmAgentRound(x: VmContext, i: number): Promise<VmAgentRound> {
  const { node, until } = x;
  const svc = `${x.prefix}v${i}`;
  const wl = `${svc}-k`;
  const needle = `guest=${wl}\0`;
  const known = pidSet();
  const c = await node.commit(x.vmSql(svc, ['k']));
  const seen = await watchNewQemu(needle, nowMs, { everyMs: 2, timeoutMs: 60_000, known });
  const record = await until(`${wl}'s spec.json`, () => readRecord(node, wl), 60_000, 5);
  const ready = await sshReady(target(x, record), nowMs, { everyMs: x.sshProbeMs, deadline: nowMs() + 120_000, stillAlive: () => qemuAlive(node, wl), what: wl });
  const lines = node.logLines();
  const wake = lines.find((l) => l.msg === 'wake' && l.time >= c.spawnedAt - 1 && JSON.stringify(l).includes('registry changed'));
  const pass = wake ? lines.find((l) => l.msg === 'reconcile pass' && l.time >= wake.time) : undefined;
  const agentReady = await until(`${wl}'s ready file`, () => readyFile(node, wl), 60_000, 10);

  // kill -9 of its QEMU, once the agent has seen it ready and finished its follow-up pass
  await sleep(x.settleMs);
  const pid = Number(readFileSync(join(vmDirOf(node, wl), 'qemu.pid'), 'utf8').trim());
  const known2 = pidSet();
  const k0 = nowMs();
  process.kill(pid, 'SIGKILL');
  const again = await watchNewQemu(needle, nowMs, { everyMs: 1, timeoutMs: 120_000, known: known2 });
  await until(`${wl} ready again`, () => (readyFile(node, wl) ?? 0) > k0, 120_000, 20);
  await sleep(x.settleMs);
  await node.commit(x.deleteSql(svc));
  await until(`${wl}'s QEMU to go`, () => qemuPidsWith([needle]).length === 0 && !existsSync(vmDirOf(node, wl)), 120_000);
  const at = c.doneAt;
  return {
    totalMs: ready.readyAt - at,
    wakeMs: wake ? wake.time - at : undefined,
    passMs: pass ? pass.time - at : undefined,
    launchedMs: Date.parse(record.launchedAt) - at,
    qemuSeenMs: seen.seenAt - at,
    agentReadyMs: agentReady - at,
    bannerMs: ready.bannerAt - at,
    killToNewQemuMs: again.seenAt - k0,
    polls: again.polls,
    record,
  };
}

export async function vmBareRound(x: VmContext, i: number, rec: VmRecordLite): Promise<{ totalMs: number; bannerMs: number }> {
  const { node, children } = x;
  const stateDir = join(node.bareDir, `r${i}`);
  mkdirSync(stateDir, { mode: 0o700 });
  writeFileSync(join(stateDir, 'console.log'), '');
  const port = await freePort(new Set([rec.sshPort]));
  const args = bareArgs(rec.args, vmDirOf(node, rec.name), stateDir, rec.sshPort, port);
  try {
    const t0 = nowMs();
    const q = await children.run('qemu-system-x86_64', args, { timeoutMs: 30_000 });
    if (q.code !== 0) throw new Error(`bare QEMU exited ${q.code ?? q.signal}: ${q.stderr.trim()}`);
    const pid = Number(readFileSync(join(stateDir, 'qemu.pid'), 'utf8').trim());
    const ready = await sshReady(target(x, rec, port), nowMs, { everyMs: x.sshProbeMs, deadline: nowMs() + 120_000, stillAlive: () => alive(pid), what: 'bare QEMU' });
    return { totalMs: ready.readyAt - t0, bannerMs: ready.bannerAt - t0 };
  } finally {
    await killQemus(qemuPidsWith([stateDir]), [stateDir]);
  }
}

