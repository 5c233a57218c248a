// VMs in their own systemd scopes (issue 13, item 3): under a real systemd (a podman container with
// systemd as PID 1, test/helpers/systemd-node.ts) the agent's service starts each QEMU through
// `systemd-run --scope` in machine.slice (qemu.systemd_scope = auto). Shown from outside, with
// systemctl and /proc: the cgroup, the unit and its properties, the journal on stop, adoption after
// stop/start and kill -9, the scope gone with the service. Inside this container systemd runs on
// cgroup v1 hybrid without the controllers: MemoryMax/CPUQuota are recorded on the unit, not
// enforced by the kernel; these tests check what the agent asks for, nothing more.
// The last test needs no systemd: "on" where systemd is not running is refused at start.
import { strict as assert } from 'node:assert';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { TestNode, row, waitFor } from '../helpers/agent.js';
import { SystemdNode, systemdUnavailable, IN_STATE } from '../helpers/systemd-node.js';
import { UNIT, agentStatus, applyVm, installUnit, systemdCgroup, vmInSync, vmQemu } from '../helpers/systemd-service.js';

const skip = await systemdUnavailable();

/** `systemctl list-units 'mcp-vm-*'` as lines (`--all`: inactive and failed ones too). */
async function vmUnits(node: SystemdNode, all = false): Promise<string[]> {
  const out = await node.ok(['systemctl', 'list-units', 'mcp-vm-*', ...(all ? ['--all'] : []), '--no-legend', '--plain', '--no-pager']);
  return out.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** The service's actions and their outcomes from the registry's events log (the host side of the mount). */
function actions(node: SystemdNode, svc: string): Array<[string, string]> {
  const db = new Database(join(node.stateDir, 'agent.db'), { readonly: true });
  try {
    const rows = db.prepare("SELECT action, outcome FROM events WHERE service = ? AND outcome != 'info' ORDER BY id").all(svc) as Array<{ action: string; outcome: string }>;
    return rows.map((r) => [r.action, r.outcome]);
  } finally {
    db.close();
  }
}

/** PID 1's lines about the agent's unit that mean a process outlived it in its cgroup. */
async function leftoverLines(node: SystemdNode): Promise<string[]> {
  const all = await node.ok(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
  return all.split('\n').filter((l) => /remains running|left-over process/.test(l));
}

describe('VMs in their own systemd scopes', { skip }, () => {
  it('QEMU runs in machine.slice/mcp-vm-<workload>.scope with the bounds asked for; stop, start and kill -9 of the agent leave it there, adopted', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node, { memory: 128, vcpus: 2 });
    const wl = `${svc}-k`;
    const unit = `mcp-vm-${wl}.scope`;
    await installUnit(node);
    await vmInSync(node, svc, 'the VM to converge under systemd');
    const first = await vmQemu(node, wl);
    assert.ok(first.alive, 'QEMU runs');

    // The daemonized QEMU (not systemd-run, which exec'd it and whose first process exited) is in
    // the scope, and the scope is active after systemd-run returned.
    const cg = await systemdCgroup(node, first.pid!);
    assert.ok(cg.endsWith(`/machine.slice/${unit}`), `QEMU's cgroup ${cg}`);
    const agentCg = await systemdCgroup(node, Number(await node.prop(UNIT, 'MainPID')));
    assert.ok(agentCg.endsWith('/system.slice/mcp-agent.service'), `the agent's cgroup ${agentCg}`);
    t.diagnostic(`QEMU ${first.pid} in ${cg}; the agent in ${agentCg}`);
    const listed = await vmUnits(node);
    assert.equal(listed.length, 1, listed.join('\n'));
    assert.match(listed[0]!, new RegExp(`^${unit.replaceAll('.', '\\.')} loaded active running mcp-agent VM ${svc}/k \\(workload ${wl}\\)$`));

    // What the agent asked for: guest memory + qemu.overhead_mib (64), one CPU per vCPU.
    assert.equal(await node.prop(unit, 'Slice'), 'machine.slice');
    assert.equal(await node.prop(unit, 'MemoryMax'), String((128 + 64) * 1024 * 1024));
    assert.equal(await node.prop(unit, 'CPUQuotaPerSecUSec'), '2s');
    assert.equal(await node.prop(unit, 'CollectMode'), 'inactive-or-failed');
    // What an operator sees (docs/systemd-testing.md quotes it).
    t.diagnostic((await node.ok(['systemctl', 'list-units', 'mcp-vm-*', '--no-pager'])).split('\n').slice(0, 2).join('\n'));
    t.diagnostic((await node.exec(['systemctl', 'status', unit, '--no-pager', '--lines', '0'])).stdout);
    // Recorded, not enforced here (cgroup v1 hybrid, no controllers delegated to this systemd).
    t.diagnostic(`MemoryCurrent=${await node.prop(unit, 'MemoryCurrent')} (limits recorded, not enforced in this container)`);

    // stop: nothing of the VM is in the agent's cgroup any more, so systemd has nothing to leave behind.
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    assert.equal((await vmQemu(node, wl)).alive, true, 'QEMU survives systemctl stop');
    assert.equal(await node.prop(unit, 'ActiveState'), 'active', 'the scope outlives the agent');

    // start: adopted by its pidfile as before; same QEMU, same scope, no restart.
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    await vmInSync(node, svc, 'the VM to be in sync again');
    const again = await vmQemu(node, wl);
    assert.equal(again.pid, first.pid, 'adopted: same QEMU pid');
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);
    assert.ok((await systemdCgroup(node, again.pid!)).endsWith(`/machine.slice/${unit}`));

    // kill -9 of the agent: systemd restarts it, the new agent adopts the VM in its scope.
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    await node.ok(['kill', '-9', String(mainPid)]);
    await waitFor('systemd to restart the agent', async () => {
      const p = Number(await node.prop(UNIT, 'MainPID'));
      return p > 0 && p !== mainPid && (await node.prop(UNIT, 'ActiveState')) === 'active';
    }, 30_000, 250);
    assert.equal(await node.prop(UNIT, 'NRestarts'), '1');
    await vmInSync(node, svc, 'the VM to be in sync after the restart');
    const afterKill = await vmQemu(node, wl);
    assert.equal(afterKill.pid, first.pid, 'adopted after kill -9: same QEMU pid');
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);
    assert.equal(await node.prop(unit, 'ActiveState'), 'active');

    // No "remains running" on stop, no "left-over process" on start: those were QEMU in the
    // agent's cgroup (docs/systemd-testing.md quotes them from before scopes).
    assert.deepEqual(await leftoverLines(node), []);
  });

  it('a unit left by an earlier run does not block the start; removing the service ends its scope, nothing failed or abandoned left', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node);
    const wl = `${svc}-k`;
    const unit = `mcp-vm-${wl}.scope`;
    // A scope of this name holding a process that is not the VM: what a crashed run can leave
    // (an agent whose QEMU died while systemd never saw the scope empty, or anything by hand).
    await node.ok(['systemd-run', '--scope', '--quiet', '--unit', unit, '--slice', 'machine.slice', 'sh', '-c', `sleep 600 >/dev/null 2>&1 & echo $! > ${IN_STATE}/stale.pid`]);
    const stale = Number((await node.ok(['cat', `${IN_STATE}/stale.pid`])).trim());
    assert.equal(await node.prop(unit, 'ActiveState'), 'active');

    await installUnit(node);
    await vmInSync(node, svc, 'the VM to converge despite the leftover unit');
    const vm = await vmQemu(node, wl);
    assert.ok((await systemdCgroup(node, vm.pid!)).endsWith(`/machine.slice/${unit}`));
    assert.equal((await node.exec(['kill', '-0', String(stale)])).exitCode, 1, 'the leftover in the old unit was stopped with it');
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);
    // Converged by its first start, not by a retry after a failed one (a failed start also ends
    // the scope it named, so a retry would hide a launch that the leftover unit blocked).
    assert.deepEqual(actions(node, svc), [['start', 'ok']]);

    // The service goes: its QEMU and its scope with it. `--all` would show an inactive, failed or
    // still-"active" empty scope (this container's systemd is not told when a cgroup empties).
    const deleted = await node.agent(['delete', svc]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    await waitFor('the VM to be removed', async () => !(await vmQemu(node, wl)).alive && (await node.exec(['test', '-e', `${IN_STATE}/vm/${wl}`])).exitCode !== 0, 60_000, 250);
    assert.equal((await node.exec(['kill', '-0', String(vm.pid)])).exitCode, 1, 'QEMU is gone');
    assert.deepEqual(await vmUnits(node, true), []);
    assert.equal(await node.prop(unit, 'LoadState'), 'not-found');
    assert.deepEqual(await leftoverLines(node), []);
  });
});

describe('qemu.systemd_scope = "on" without systemd', { skip: existsSync('/run/systemd/system') ? 'systemd runs this host' : false }, () => {
  it('agent run refuses to start, naming the setting and the rule (exit 2)', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const cfg = join(node.dir, 'agent.toml');
    writeFileSync(cfg, '[qemu]\nsystemd_scope = "on"\n');
    const r = await node.cli(['run', '--once'], { env: { AGENT_CONFIG: cfg } });
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /qemu\.systemd_scope: is "on", but systemd is not running this host \(no \/run\/systemd\/system/);
    // auto (the default) on the same host: VMs start as before, and the agent starts.
    writeFileSync(cfg, '[qemu]\nsystemd_scope = "auto"\n');
    assert.equal((await node.cli(['run', '--once'], { env: { AGENT_CONFIG: cfg } })).exitCode, 0);
  });
});
