// Containers under a real systemd (issue 13, item 1's container half): podman inside the systemd
// node (test/helpers/systemd-node.ts, `containers: true`), contrib/systemd's unit installed the way
// the README says, one container service (the tests' busybox image, `podman load`ed inside) and, in
// the first test, one VM beside it. Skips only where podman cannot run systemd at all.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { TestNode, waitFor, row, containerService, vmService, SLEEP, VM_KERNEL } from '../helpers/agent.js';
import { SystemdNode, systemdUnavailable, IN_STATE } from '../helpers/systemd-node.js';
import { UNIT, restartedAgent, agentStatus as status, applyToml as apply, installUnit, pidAlive as alive, systemdCgroup } from '../helpers/systemd-service.js';

const HELLO = 'hello from the container';
const skip = await systemdUnavailable();

/** What the inner podman says of a container: id, state, its main pid and conmon's. */
interface Inner {
  id: string;
  running: boolean;
  pid: number;
  conmonPid: number;
}

async function inner(node: SystemdNode, name: string): Promise<Inner | undefined> {
  const r = await node.exec(['podman', 'inspect', '--format', '{{.Id}} {{.State.Running}} {{.State.Pid}} {{.State.ConmonPid}}', name]);
  if (r.exitCode !== 0) return undefined;
  const [id, running, pid, conmonPid] = r.stdout.trim().split(' ');
  return { id: id!, running: running === 'true', pid: Number(pid), conmonPid: Number(conmonPid) };
}

async function inSync(node: SystemdNode, rows: Array<[string, string]>, what: string): Promise<void> {
  await waitFor(what, async () => {
    const s = await status(node);
    return rows.every(([svc, comp]) => {
      const r = row(s, svc, comp);
      return r.drift === 'in-sync' && r.observed === 'running';
    });
  }, 120_000, 500);
}

describe('containers under a real systemd', { skip }, () => {
  it('a container and a VM converge; stop leaves both running; start adopts them (same container id and pid)', async (t) => {
    const { node, state } = await SystemdNode.boot({ containers: true, guestImages: true });
    t.after(() => node.cleanup());
    t.diagnostic(`systemd in ${node.name}: ${state}`);
    const ctr = TestNode.serviceName('sdc');
    const vm = TestNode.serviceName('sdv');
    await apply(node, 'ctr.toml', containerService(ctr, { c: ['sh', '-c', `echo ${HELLO}; exec sleep 2147483647`] }));
    await apply(node, 'vm.toml', vmService(vm, { k: VM_KERNEL }));
    await installUnit(node);
    await inSync(node, [[ctr, 'c'], [vm, 'k']], 'the container and the VM to converge under systemd');

    const workload = row(await status(node), ctr, 'c').workload;
    const first = await inner(node, workload);
    assert.ok(first?.running, `podman inside runs ${workload}`);
    const qemuPid = Number((await node.ok(['cat', `${IN_STATE}/vm/${vm}-k/qemu.pid`])).trim());
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    // Where they are accounted (podman's cgroup manager inside is systemd, its default under
    // systemd): the container and its conmon each in a transient scope of machine.slice (the agent
    // takes systemd's INVOCATION_ID out of its environment: with it podman leaves conmon in the
    // calling unit, and `systemctl stop` would count on KillMode=process alone). QEMU is in its own
    // scope (qemu.systemd_scope, auto under systemd: systemd-scopes.test.ts).
    // (The `/../../` prefix: the node has its own cgroup namespace, rooted below systemd's view.)
    const cg = { container: await systemdCgroup(node, first.pid), conmon: await systemdCgroup(node, first.conmonPid), qemu: await systemdCgroup(node, qemuPid), agent: await systemdCgroup(node, mainPid) };
    t.diagnostic(`cgroups: ${JSON.stringify(cg)}`);
    assert.match(cg.container, new RegExp(`machine\\.slice/libpod-${first.id}\\.scope$`));
    assert.match(cg.agent, /system\.slice\/mcp-agent\.service$/);
    assert.match(cg.conmon, new RegExp(`machine\\.slice/libpod-conmon-${first.id}\\.scope$`));
    assert.match(cg.qemu, new RegExp(`machine\\.slice/mcp-vm-${vm}-k\\.scope$`));
    assert.equal(await node.prop(`libpod-${first.id}.scope`, 'ActiveState'), 'active', 'systemctl knows the container scope');

    // stop: the agent alone gets SIGTERM, exits 0 before TimeoutStopSec; container and VM stay.
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'inactive');
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    assert.equal(await node.prop(UNIT, 'ExecMainStatus'), '0');
    const stopped = await inner(node, workload);
    assert.equal(stopped?.running, true, 'the container survives systemctl stop');
    assert.equal(stopped.pid, first.pid, 'the same container process');
    assert.equal(await alive(node, first.conmonPid), true, 'conmon survives systemctl stop');
    assert.equal(await alive(node, qemuPid), true, 'QEMU survives systemctl stop');
    // Nothing stays in the stopped unit's cgroup: not the agent's helpers (its own `podman system
    // service`, `podman events`), nor conmon or QEMU (in their scopes).
    const left = await node.ok(['sh', '-c', 'for p in $(cat /sys/fs/cgroup/systemd/system.slice/mcp-agent.service/cgroup.procs); do echo "$p $(cat /proc/$p/comm)"; done']);
    t.diagnostic(`left in the unit's cgroup after stop: ${JSON.stringify(left.trim().split('\n'))}`);
    assert.equal(left.trim(), '', `processes left in the stopped unit: ${left}`);

    // start: a new agent adopts both; nothing restarted.
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    assert.notEqual(Number(await node.prop(UNIT, 'MainPID')), mainPid, 'a new agent process');
    await inSync(node, [[ctr, 'c'], [vm, 'k']], 'both to be in sync again');
    const again = await inner(node, workload);
    assert.deepEqual(again, first, 'adopted: same container id, pid and conmon');
    assert.equal(Number((await node.ok(['cat', `${IN_STATE}/vm/${vm}-k/qemu.pid`])).trim()), qemuPid, 'adopted: same QEMU pid');
    const s = await status(node);
    assert.equal(row(s, ctr, 'c').restarts, 0);
    assert.equal(row(s, vm, 'k').restarts, 0);
    // Exactly one container for the service: nothing was started twice.
    const all = (await node.ok(['podman', 'ps', '-a', '--format', '{{.Names}}'])).trim().split('\n');
    assert.deepEqual(all, [workload]);
    const fromSystemd = (await node.ok(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager'])).split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
    t.diagnostic(`systemd's own lines about the unit: ${JSON.stringify(fromSystemd)}`);
    assert.deepEqual(fromSystemd.filter((l) => /remains running|left-over process/.test(l)), [], 'no workload process is left in the unit');
    // The unit's journal: the agent's own lines (SYSLOG_IDENTIFIER node, its stderr) are all JSON.
    // The container's output is not: the log driver is journald (podman's default under systemd)
    // and conmon, which writes it, is in its own scope; it is under the container's name. (The
    // rootfs sets podman's events_logger to "file"; with journald, podman's event lines would come.)
    const entries = (await node.ok(['journalctl', `_SYSTEMD_UNIT=${UNIT}`, '-o', 'json', '--no-pager', '--output-fields=SYSLOG_IDENTIFIER,MESSAGE,_COMM'])).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { SYSLOG_IDENTIFIER?: string; MESSAGE?: unknown; _COMM?: string });
    const agentLines = entries.filter((e) => e.SYSLOG_IDENTIFIER === 'node');
    assert.ok(agentLines.length > 0, 'the agent logged to the journal');
    for (const e of agentLines) assert.equal(typeof (JSON.parse(String(e.MESSAGE)) as { level?: unknown }).level, 'number', String(e.MESSAGE));
    const others = entries.filter((e) => e.SYSLOG_IDENTIFIER !== 'node').map((e) => `${e.SYSLOG_IDENTIFIER}/${e._COMM}: ${JSON.stringify(e.MESSAGE)}`);
    t.diagnostic(`the unit's journal: ${agentLines.length} agent lines; others: ${JSON.stringify(others)}`);
    assert.ok(!others.some((o) => o.includes(HELLO)), "the container's output is not in the agent unit's journal");
    const own = await node.ok(['journalctl', `CONTAINER_NAME=${workload}`, '-o', 'cat', '--no-pager']);
    assert.ok(own.includes(HELLO), `the container's output is in the journal under its name: ${own}`);
    // What the README tells an operator to run for the agent's own lines.
    const viaT = (await node.ok(['journalctl', `_SYSTEMD_UNIT=${UNIT}`, '-t', 'node', '-o', 'cat', '--no-pager'])).split('\n').filter((l) => l.trim() !== '');
    assert.equal(viaT.length, agentLines.length);
  });

  it('kill -9 of the agent: systemd restarts it and the new agent adopts the container', async (t) => {
    const { node } = await SystemdNode.boot({ containers: true });
    t.after(() => node.cleanup());
    const ctr = TestNode.serviceName('sdc');
    await apply(node, 'ctr.toml', containerService(ctr, { c: SLEEP }));
    await installUnit(node);
    await inSync(node, [[ctr, 'c']], 'the container to converge under systemd');
    const workload = row(await status(node), ctr, 'c').workload;
    const first = await inner(node, workload);
    assert.ok(first?.running);
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    await node.ok(['kill', '-9', String(mainPid)]);
    const newPid = await restartedAgent(node, mainPid);
    t.diagnostic(`agent ${mainPid} killed; systemd started ${newPid}`);
    assert.equal(await node.prop(UNIT, 'NRestarts'), '1');
    await inSync(node, [[ctr, 'c']], 'the container to be in sync after the restart');
    assert.deepEqual(await inner(node, workload), first, 'adopted: same container id, pid and conmon');
    assert.equal(row(await status(node), ctr, 'c').restarts, 0);
  });
});
