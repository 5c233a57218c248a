// The agent as a real systemd service (issue 13): contrib/systemd's unit installed the way the
// README says, inside a container whose PID 1 is systemd (test/helpers/systemd-node.ts), with one
// unikernel VM (QEMU, TCG, SLIRP) from the project's guest image. Skips only where podman cannot
// run systemd at all (not root, no podman).
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { waitFor, row } from '../helpers/agent.js';
import { UNIT, agentStatus, applyVm, installUnit, placeUnit, restartedAgent, vmInSync, vmQemu, systemdCgroup } from '../helpers/systemd-service.js';
import { SystemdNode, systemdUnavailable, IN_STATE, IN_CHECKOUT } from '../helpers/systemd-node.js';

const skip = await systemdUnavailable();

describe('the agent under a real systemd', { skip }, () => {
  it('start converges a VM; stop leaves it running; start adopts it; logs reach the journal as JSON', async (t) => {
    const { node, state, bootMs } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    t.diagnostic(`systemd in ${node.name}: ${state} after ${bootMs} ms`);

    const svc = await applyVm(node);
    await installUnit(node);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'active');
    await vmInSync(node, svc, 'the VM to converge under systemd');
    const first = await vmQemu(node, `${svc}-k`);
    assert.ok(first.alive, 'QEMU runs');
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    assert.ok(mainPid > 0);
    // With qemu.systemd_scope = auto (the default) under systemd, QEMU sits in its own scope
    // (…/machine.slice/mcp-vm-<workload>.scope), no longer in the service's cgroup: shown here,
    // asserted in systemd-scopes.test.ts.
    const cg = await systemdCgroup(node, first.pid!);
    t.diagnostic(`QEMU pid ${first.pid}, cgroup ${cg}; agent MainPID ${mainPid}`);

    // stop: the agent alone gets SIGTERM (KillMode=process), exits 0 before TimeoutStopSec, QEMU stays.
    const stopStarted = Date.now();
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    t.diagnostic(`systemctl stop took ${Date.now() - stopStarted} ms (TimeoutStopSec=${await node.prop(UNIT, 'TimeoutStopUSec')})`);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'inactive');
    // Result=timeout would mean systemd had to SIGKILL the agent after TimeoutStopSec.
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    assert.equal(await node.prop(UNIT, 'ExecMainStatus'), '0');
    assert.equal((await vmQemu(node, `${svc}-k`)).alive, true, 'QEMU survives systemctl stop');

    // start: the new agent adopts the same QEMU; nothing is restarted.
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    const secondPid = Number(await node.prop(UNIT, 'MainPID'));
    assert.notEqual(secondPid, mainPid, 'a new agent process');
    await vmInSync(node, svc, 'the VM to be in sync again');
    const again = await vmQemu(node, `${svc}-k`);
    assert.equal(again.pid, first.pid, 'adopted: same QEMU pid');
    assert.equal(again.alive, true);
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);

    // The agent's own lines in the journal (its stderr) are pino JSON. `-u` also shows systemd's
    // lines about the unit (Started…, Stopping…; "remains running" when VM scopes are off): those come from PID 1.
    const agentLines = (await node.ok(['journalctl', `_SYSTEMD_UNIT=${UNIT}`, '-o', 'cat', '--no-pager'])).split('\n').filter((l) => l.trim() !== '');
    assert.ok(agentLines.length > 0, 'the agent logged to the journal');
    for (const l of agentLines) {
      const parsed = JSON.parse(l) as { level?: unknown; msg?: unknown };
      assert.equal(typeof parsed.level, 'number', l);
    }
    const all = (await node.ok(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager'])).split('\n');
    const fromSystemd = all.filter((l) => l.trim() !== '' && !l.startsWith('{'));
    t.diagnostic(`journal: ${agentLines.length} agent JSON lines; systemd's own: ${JSON.stringify(fromSystemd)}`);
  });

  it('kill -9 of the agent: systemd restarts it (Restart=always) and the new agent adopts the VM', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node);
    await installUnit(node);
    await vmInSync(node, svc, 'the VM to converge under systemd');
    const vm = await vmQemu(node, `${svc}-k`);
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    await node.ok(['kill', '-9', String(mainPid)]);
    // RestartSec=2: systemd starts a new agent; NRestarts counts it.
    const newPid = await restartedAgent(node, mainPid);
    t.diagnostic(`agent ${mainPid} killed; systemd started ${newPid}`);
    assert.equal(await node.prop(UNIT, 'NRestarts'), '1');
    await vmInSync(node, svc, 'the VM to be in sync after the restart');
    const after = await vmQemu(node, `${svc}-k`);
    assert.equal(after.pid, vm.pid, 'adopted: same QEMU pid');
    assert.equal(after.alive, true);
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);
  });

  it('exit 5 (another agent reconciles the registry) is not retried (RestartPreventExitStatus=5)', async (t) => {
    const { node } = await SystemdNode.boot();
    t.after(() => node.cleanup());
    // An agent started by hand, outside the unit, holds the registry's claim.
    await node.ok(['sh', '-c', `AGENT_LOG_LEVEL=warn nohup node ${IN_CHECKOUT}/bin/agent.js --db ${IN_STATE}/agent.db run >/dev/null 2>${IN_STATE}/by-hand.log &`]);
    await waitFor('the hand-started agent to claim the registry', async () => (await node.agent(['status', '--json'])).exitCode === 0 && (await node.exec(['test', '-S', `${IN_STATE}/agent.sock`])).exitCode === 0, 30_000, 250);
    await placeUnit(node);
    // Type=notify: enable --now fails, as the agent exits 5 before READY=1; the unit's state says what happened.
    await node.exec(['systemctl', 'enable', '--now', 'mcp-agent']);
    await waitFor('the unit to fail', async () => (await node.prop(UNIT, 'ActiveState')) === 'failed', 30_000, 250);
    assert.equal(await node.prop(UNIT, 'ExecMainStatus'), '5');
    // A restart would come RestartSec after the exit: wait a second longer than that, then look.
    const restartSec = Number(await node.prop(UNIT, 'RestartUSec').then((v) => v.replace(/s$/, '')));
    await new Promise((res) => setTimeout(res, (restartSec + 1) * 1000));
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'failed');
    assert.equal(await node.prop(UNIT, 'NRestarts'), '0');
    const journal = await node.ok(['journalctl', `_SYSTEMD_UNIT=${UNIT}`, '-o', 'cat', '--no-pager']);
    assert.match(journal, /another agent reconciles/);
  });

  it('systemctl restart while the VM boots: the boot is rolled back and done once more, nothing doubled or leaked', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node);
    await installUnit(node);
    // QEMU runs (pidfile written) but SSH does not answer yet: the VM start is still under way.
    const booting = await waitFor('QEMU to start', async () => {
      const r = await node.exec(['cat', `${IN_STATE}/vm/${svc}-k/qemu.pid`]);
      return r.exitCode === 0 && r.stdout.trim() !== '' ? Number(r.stdout.trim()) : undefined;
    }, 60_000, 100);
    await node.ok(['systemctl', 'restart', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'active');
    await vmInSync(node, svc, 'the VM to converge after the restart');
    const vm = await vmQemu(node, `${svc}-k`);
    t.diagnostic(`QEMU ${booting} was booting at the restart; now ${vm.pid}`);
    // Exactly one QEMU, one state dir, and the first QEMU gone (rolled back) or adopted.
    const qemus = (await node.exec(['pgrep', '-x', 'qemu-system-x86'])).stdout.split('\n').filter((l) => l.trim() !== '');
    assert.deepEqual(qemus.map(Number), [vm.pid], 'one QEMU, the one in the pidfile');
    assert.deepEqual((await node.ok(['ls', `${IN_STATE}/vm`])).trim().split('\n'), [`${svc}-k`]);
    // The registry is on the host side of the bind mount: read its leases from here.
    const db = new Database(join(node.stateDir, 'agent.db'), { readonly: true });
    try {
      const leases = db.prepare('SELECT service, component, purpose FROM leases').all() as Array<{ service: string; component: string; purpose: string }>;
      assert.deepEqual(leases.map((l) => `${l.service}/${l.component}`), [`${svc}/k`], JSON.stringify(leases));
    } finally {
      db.close();
    }
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
  });
});
