// Host resource admission end to end: three VMs of 16000 MiB on this 24 GiB node under a real
// agent (QEMU/TCG booting the project's guest image; QEMU allocates guest RAM lazily, so a
// 16000 MiB guest boots here). What fits starts, the rest is `pending: does not fit`, nothing that
// would exceed the capacity is started, and deleting the running one lets the next in order start
// (the removal wakes the loop: the scheduled resync is off).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TestNode, row, waitFor, type StatusJson } from '../helpers/agent.js';

const GUEST_MIB = 16_000;
const OVERHEAD_MIB = 64;
const NEED = GUEST_MIB + OVERHEAD_MIB;
const RESERVED = 512;

interface Resources {
  memory: { total_mib: number; reserved_mib: number; capacity_mib: number; allocated_mib: number };
  vcpus: { online_cpus: number; overcommit: number; capacity: number; allocated: number };
}
type AdmStatus = StatusJson & { resources: Resources | null };
interface PlanJson {
  actions: Array<{ workload: string }>;
  not_admitted: Array<{ type: string; service: string; component: string; not_admitted: string }>;
}

/** The capacity as the kernel tells it, read here the way an operator would. */
const memTotalMib = Math.floor(Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024);
const capacity = memTotalMib - RESERVED;
/** How many 16000 MiB VMs this host admits (one on a 24 GiB node). */
const fits = Math.floor(capacity / NEED);

const vm = (name: string): string => `name = "${name}"\nruntime = "unikernel"\n\n[[components]]\nname = "vm"\nmemory = ${GUEST_MIB}\nimage = "guest.img"\n`;

describe('admission: VMs that do not fit the host', { skip: fits < 1 || fits >= 3 ? `this host admits ${fits} VMs of ${NEED} MiB: the test wants 1 or 2` : undefined }, () => {
  it('starts what fits, keeps the rest pending with why, and starts the next when one is deleted', async (t) => {
    const node = new TestNode({ AGENT_ACCEL: 'tcg', AGENT_RESYNC: '0 0 0 1 1 *' });
    t.after(() => node.cleanup());
    node.useGuestImages();
    const base = TestNode.serviceName('adm');
    const names = ['a', 'b', 'c'].map((s) => `${base}${s}`);
    // Applied in reverse: the order that decides is (service, component), not the registry's.
    for (const n of [...names].reverse()) await node.apply(vm(n), `${n}.toml`);
    node.startAgent();

    const status = async (): Promise<AdmStatus> => (await node.status()) as AdmStatus;
    const settled = async (running: string[]): Promise<AdmStatus | false> => {
      const st = await status();
      const rows = names.map((n) => row(st, n, 'vm'));
      const inSync = rows.filter((r) => r.drift === 'in-sync' && r.observed === 'running').map((r) => r.service);
      const pending = rows.filter((r) => r.drift === 'pending' && r.reason.startsWith('does not fit'));
      return inSync.join() === running.join() && pending.length === names.length - running.length ? st : false;
    };
    const winners = names.slice(0, fits);
    const losers = names.slice(fits);
    let st = await waitFor(`${winners.join(', ')} running, the rest pending`, () => settled(winners), 90_000, 250);

    // The reason says what it needs, what is free, of what, and what is reserved.
    const free = capacity - fits * NEED;
    for (const n of losers) assert.equal(row(st, n, 'vm').reason, `does not fit: needs ${NEED} MiB, ${free} MiB free of ${capacity} (reserved ${RESERVED})`);
    // The header's numbers, from the running agent's API (status asks it).
    assert.deepEqual(st.resources?.memory, { total_mib: memTotalMib, reserved_mib: RESERVED, capacity_mib: capacity, allocated_mib: fits * NEED });
    assert.equal(st.resources?.vcpus.allocated, fits);
    const fromApi = JSON.parse((await node.api('/v1/status')).body) as AdmStatus;
    assert.deepEqual(fromApi.resources, st.resources, 'the agent\'s API serves the same numbers');
    assert.match(await node.ok(['status']), new RegExp(`^host: +memory ${fits * NEED}/${capacity} MiB allocated \\(total ${memTotalMib}, reserved ${RESERVED}\\)`, 'm'));
    // plan: nothing to do but what is not admitted.
    const plan = JSON.parse(await node.ok(['plan', '--json'])) as PlanJson;
    assert.deepEqual(plan.actions, []);
    assert.deepEqual(plan.not_admitted.map((n) => `${n.type} ${n.service}/${n.component}`), losers.map((n) => `start ${n}/vm`));
    assert.equal((await node.cli(['plan', '--check'])).exitCode, 1);
    // Nothing exceeding the capacity was started: one QEMU per winner, one start each in the events log.
    assert.equal(node.qemuProcesses().length, fits);
    const events = JSON.parse(await node.ok(['events', '--json', '-n', '100'])) as Array<{ action: string; service: string | null; outcome: string }>;
    assert.deepEqual(events.filter((e) => e.action === 'start').map((e) => e.service).sort(), winners);
    // The metrics, from the agent's API.
    const metrics = (await node.api('/metrics')).body;
    assert.match(metrics, new RegExp(`^mcp_agent_memory_bytes\\{state="allocated"\\} ${fits * NEED * 1024 * 1024}$`, 'm'));
    assert.match(metrics, new RegExp(`^mcp_agent_memory_bytes\\{state="capacity"\\} ${capacity * 1024 * 1024}$`, 'm'));

    // Deleting the first winner frees its share: the first loser in order starts, and only it.
    await node.ok(['delete', names[0]!]);
    const next = [...winners.slice(1), losers[0]!];
    st = await waitFor(`${next.join(', ')} running after ${names[0]} was deleted`, async () => {
      const s = await status();
      if (s.components.some((c) => c.service === names[0])) return false;
      const rows = names.slice(1).map((n) => row(s, n, 'vm'));
      const running = rows.filter((r) => r.drift === 'in-sync' && r.observed === 'running').map((r) => r.service);
      return running.join() === next.join() ? s : false;
    }, 90_000, 250);
    for (const n of losers.slice(1)) assert.match(row(st, n, 'vm').reason, /^does not fit: needs 16064 MiB/);
    assert.equal(st.resources?.memory.allocated_mib, fits * NEED);
    assert.equal(node.qemuProcesses().length, fits);
  });
});
