// SIGINT and SIGTERM to `agent run --once` in the middle of an action (issue 7, defect 3): the
// agent stops dispatching, rolls back a VM start still booting (QEMU, state dir, lease), finishes
// a container start, gives the claim back, deletes its heartbeat and exits 130 / 143; the next
// `run --once` converges to exactly one workload. Checked from outside: /proc, the VM dir, the
// registry with a read-only connection, `agent events` and `agent status`.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestNode, VM_KERNEL, containerService, row, vmService, waitFor, SLEEP } from '../helpers/agent.js';

const EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

interface EventRow {
  action: string;
  outcome: string;
  message: string;
}

/** What a stopped `run --once` must not leave: its claim, its heartbeat, open intents. */
function assertReleased(node: TestNode): void {
  assert.deepEqual(node.query("SELECT key FROM meta WHERE key IN ('reconciler', 'heartbeat')"), [], 'claim and heartbeat are gone');
  assert.deepEqual(node.query("SELECT id FROM events WHERE outcome = 'pending'"), [], 'no intent is left open');
}

async function events(node: TestNode): Promise<EventRow[]> {
  return JSON.parse(await node.ok(['events', '--json', '-n', '50'])) as EventRow[];
}

/** QEMU processes of this node whose -name is the workload (zombies have no cmdline: not counted). */
function qemuOf(node: TestNode, workload: string): number[] {
  return node.qemuProcesses().filter((pid) => {
    try {
      // `-name guest=W` (older agents: `guest=W,process=W`).
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a === `guest=${workload}` || a.startsWith(`guest=${workload},`));
    } catch {
      return false;
    }
  });
}

describe('signals to run --once while a VM boots', () => {
  const points = {
    'right after QEMU appears': (node: TestNode, workload: string) => waitFor('QEMU of the VM', async () => qemuOf(node, workload).length > 0, 60_000, 20),
    'while it waits for SSH': (node: TestNode, workload: string) =>
      waitFor('the guest init on the console', async () => readFileSync(join(node.dir, 'vm', workload, 'console.log'), 'utf8').includes('AGENT_GUEST_INIT'), 60_000, 20),
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const [point, reached] of Object.entries(points)) {
      it(`${signal} ${point}: QEMU, state dir and lease are rolled back, exit ${EXIT[signal]}, the next pass boots one`, async (t) => {
        const node = new TestNode({ AGENT_ACCEL: 'tcg' });
        t.after(() => node.cleanup());
        node.useGuestImages();
        const svc = TestNode.serviceName();
        const workload = `${svc}-vm`;
        await node.apply(vmService(svc, { vm: VM_KERNEL }));
        const once = node.startOnce();
        await reached(node, workload);
        process.kill(once.pid!, signal);
        const r = await once;
        assert.equal(r.exitCode, EXIT[signal], `exit code (signal ${r.signal ?? 'none'}); log:\n${readFileSync(join(node.dir, 'once.log'), 'utf8').slice(-2000)}`);
        await waitFor('no QEMU of the VM', async () => qemuOf(node, workload).length === 0, 10_000);
        assert.equal(existsSync(join(node.dir, 'vm', workload)), false, 'state dir removed');
        assert.deepEqual(node.query('SELECT value FROM leases'), [], 'no lease');
        assert.deepEqual(node.query('SELECT workload FROM instances'), [], 'no instances row');
        assertReleased(node);
        const start = (await events(node)).find((e) => e.action === 'start');
        assert.equal(start?.outcome, 'interrupted', JSON.stringify(start));
        assert.match(start!.message, new RegExp(`rolled back: the agent is stopping \\(${signal}\\)`));

        await node.ok(['run', '--once']);
        const st = await node.status();
        assert.equal(row(st, svc, 'vm').drift, 'in-sync', JSON.stringify(row(st, svc, 'vm')));
        assert.equal(qemuOf(node, workload).length, 1, 'exactly one QEMU');
        assert.equal(node.query('SELECT workload FROM instances').length, 1);
      });
    }
  }
});

describe('SIGTERM to agent run while a VM boots', () => {
  // A boot may take up to boot_timeout (90 s), longer than a stop should: the boot is rolled back,
  // and the next agent boots the VM again under its own watch.
  it('rolls the boot back (no QEMU, state dir, lease), ends its claim and heartbeat, exits 0; the next pass boots one', async (t) => {
    const node = new TestNode({ AGENT_ACCEL: 'tcg' });
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName();
    const workload = `${svc}-vm`;
    await node.apply(vmService(svc, { vm: VM_KERNEL }));
    const agent = node.startAgent({ AGENT_RESYNC: '0 0 0 1 1 *' });
    await waitFor('the guest init on the console', async () => readFileSync(join(node.dir, 'vm', workload, 'console.log'), 'utf8').includes('AGENT_GUEST_INIT'), 60_000, 20);
    process.kill(agent.pid!, 'SIGTERM');
    const r = await agent;
    assert.equal(r.exitCode, 0, `exit code (signal ${r.signal ?? 'none'})`);
    await waitFor('no QEMU of the VM', async () => qemuOf(node, workload).length === 0, 10_000);
    assert.equal(existsSync(join(node.dir, 'vm', workload)), false, 'state dir removed');
    assert.deepEqual(node.query('SELECT value FROM leases'), [], 'no lease');
    assertReleased(node);
    assert.equal((await events(node)).find((e) => e.action === 'start')?.outcome, 'interrupted');
    await node.ok(['run', '--once']);
    assert.equal(row(await node.status(), svc, 'vm').drift, 'in-sync');
    assert.equal(qemuOf(node, workload).length, 1, 'exactly one QEMU');
  });
});

describe('signals to run --once while a container starts', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} once the start is under way: exit ${EXIT[signal]}, claim and heartbeat gone, the next pass leaves exactly one`, async (t) => {
      const node = new TestNode();
      t.after(() => node.cleanup());
      const svc = TestNode.serviceName();
      await node.apply(containerService(svc, { api: SLEEP }));
      const once = node.startOnce();
      await waitFor('the start intent', async () => node.query("SELECT id FROM events WHERE action = 'start'").length > 0, 30_000, 10);
      process.kill(once.pid!, signal);
      const r = await once;
      assert.equal(r.exitCode, EXIT[signal], `exit code (signal ${r.signal ?? 'none'})`);
      assertReleased(node);
      // A container start is short: it is finished, not rolled back; it is in the log either way.
      const start = (await events(node)).find((e) => e.action === 'start');
      assert.ok(start && ['ok', 'interrupted'].includes(start.outcome), JSON.stringify(start));
      assert.ok((await node.containers()).length <= 1);

      await node.ok(['run', '--once']);
      const st = await node.status();
      assert.equal(row(st, svc, 'api').drift, 'in-sync');
      const cs = await node.containers();
      assert.equal(cs.length, 1, JSON.stringify(cs.map((c) => c.Names)));
      assert.equal(cs[0]!.State, 'running');
    });
  }
});
