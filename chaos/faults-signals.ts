/**
 * Signals during a VM start: `run --once` gets SIGINT or SIGTERM at each step of a VM's start
 * (claim taken, lease taken, QEMU spawned, guest booting). It must exit 130 (SIGINT) or 143
 * (SIGTERM) and leave the VM all or nothing: either booted and recorded (QEMU, state dir with
 * `ready`, lease, instances row) or gone (no QEMU, no state dir, no lease); and no claim or heartbeat.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode } from '../test/helpers/agent.js';
import { endsWithin } from './lib/bounded.js';
import { sleep, type ChaosSizes } from './lib/config.js';
import type { Janitor } from './lib/janitor.js';
import { qemuProcesses, readRegistry } from './lib/observe.js';
import type { Tally } from './lib/report.js';

export const SIGNAL_INVARIANTS = [
  'signal during a VM start: exit 130/143',
  'signal during a VM start: the VM is all or nothing',
  'signal during a VM start: the claim is given back',
  'signal during a VM start: no heartbeat left behind',
];

type Step = { name: string; reached: (node: TestNode, workload: string, since: Map<string, number>) => boolean };

const STEPS: Step[] = [
  { name: 'claim taken', reached: (n) => existsSync(n.db) && readRegistry(n).meta.reconciler !== undefined },
  { name: 'lease taken', reached: (n) => existsSync(n.db) && readRegistry(n).leases.length > 0 },
  { name: 'QEMU spawned', reached: (n) => qemuProcesses(n).length > 0 },
  {
    name: 'guest booting',
    reached: (n, w, since) => {
      if (qemuProcesses(n).length === 0) return false;
      if (!since.has('q')) since.set('q', Date.now());
      return Date.now() - since.get('q')! > 1000 && !existsSync(join(n.dir, 'vm', w, 'ready'));
    },
  },
];

export async function runSignalFaults(j: Janitor, t: Tally, sizes: ChaosSizes): Promise<void> {
  // The short run gives each step one signal, alternating; a long run (iterations ≥ 8) gives each both.
  const cases = STEPS.flatMap((s, i) => (sizes.iterations >= 8 ? (['SIGINT', 'SIGTERM'] as const) : [i % 2 === 0 ? 'SIGINT' : 'SIGTERM'] as const).map((sig) => ({ step: s, sig })));
  let signalled = 0;
  for (const { step, sig } of cases) {
    const node = j.node();
    node.useGuestImages();
    const svc = TestNode.serviceName('sg');
    const w = `${svc}-v`;
    await node.apply(`name = "${svc}"\n[[components]]\nname = "v"\nruntime = "unikernel"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = 128\nnetwork = "slirp"\n`);
    const once = node.spawnCli(['run', '--once']);
    const since = new Map<string, number>();
    let reached = false;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && once.exitCode === null && once.signalCode === null) {
      try {
        if (step.reached(node, w, since)) {
          reached = true;
          break;
        }
      } catch {
        /* the registry is being written: look again */
      }
      await sleep(10);
    }
    const label = `${sig} at '${step.name}'`;
    if (!reached) {
      t.add('signal cases where run --once ended before the step');
      await once;
      continue;
    }
    process.kill(once.pid!, sig);
    signalled++;
    const ended = await endsWithin(once, 60_000);
    if (!ended) process.kill(once.pid!, 'SIGKILL');
    const r = await once;
    const want = sig === 'SIGINT' ? 130 : 143;
    t.expect('signal during a VM start: exit 130/143', ended && r.exitCode === want, () => `${label}: ${ended ? `exit ${r.exitCode ?? r.signal}` : 'still running 60 s later'} (want ${want})`);
    await sleep(500); // a QEMU the agent ended may still be a zombie for a moment
    const qemu = qemuProcesses(node).length;
    const dir = existsSync(join(node.dir, 'vm', w));
    const ready = existsSync(join(node.dir, 'vm', w, 'ready'));
    const reg = readRegistry(node);
    const leases = reg.leases.length;
    const recorded = reg.instances.some((i) => i.workload === w && i.handle !== null);
    const finished = qemu === 1 && dir && ready && leases === 1 && recorded;
    const rolledBack = qemu === 0 && !dir && leases === 0;
    t.expect('signal during a VM start: the VM is all or nothing', finished || rolledBack, () => `${label}: QEMU ${qemu}, state dir ${dir ? (ready ? 'ready' : 'without ready') : 'absent'}, leases ${leases}, instances row ${recorded ? 'yes' : 'no'}`);
    t.expect('signal during a VM start: the claim is given back', reg.meta.reconciler === undefined, () => `${label}: meta.reconciler = ${reg.meta.reconciler}`);
    // An interrupted pass is not a "last pass": status must not show a heartbeat from it.
    t.expect('signal during a VM start: no heartbeat left behind', reg.meta.heartbeat === undefined, () => `${label}: meta.heartbeat = ${reg.meta.heartbeat}`);
    await j.cleanup();
  }
  t.figure('signals sent during VM starts', signalled);
}
