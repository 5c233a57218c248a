// The agent as a real systemd service (issue 13): contrib/systemd's unit installed the way the
// README says, inside a container whose PID 1 is systemd (test/helpers/systemd-node.ts), with one
// unikernel VM (QEMU, TCG, SLIRP) from the project's guest image. Skips only where podman cannot
// run systemd at all (not root, no podman).
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestNode, waitFor, row, type StatusJson } from '../helpers/agent.js';
import { SystemdNode, systemdUnavailable, IN_STATE, IN_CHECKOUT } from '../helpers/systemd-node.js';

const UNIT = 'mcp-agent.service';
const skip = await systemdUnavailable();

async function status(node: SystemdNode): Promise<StatusJson> {
  const r = await node.agent(['status', '--json']);
  if (r.exitCode !== 0) throw new Error(`status exited ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

/** The VM's QEMU pid (in the container's pid namespace) from its pidfile, and whether it lives. */
async function qemu(node: SystemdNode, workload: string): Promise<{ pid: number; alive: boolean }> {
  const pid = Number((await node.ok(['cat', `${IN_STATE}/vm/${workload}/qemu.pid`])).trim());
  // State Z (a zombie PID 1 has not reaped yet) counts as gone (HOST-FACTS).
  const st = await node.exec(['sh', '-c', `awk '{print $3}' /proc/${pid}/stat`]);
  return { pid, alive: st.exitCode === 0 && st.stdout.trim() !== '' && st.stdout.trim() !== 'Z' };
}

describe('the agent under a real systemd', { skip }, () => {
  it('start converges a VM; stop leaves it running; start adopts it; logs reach the journal as JSON', async (t) => {
    const { node, state } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    t.diagnostic(`systemd in ${node.name}: ${state}`);

    // One VM service, written before the agent starts (any SQLite client or `agent apply` may).
    const svc = TestNode.serviceName('sd');
    writeFileSync(join(node.stateDir, 'svc.toml'), `name = "${svc}"\nruntime = "unikernel"\n\n[[components]]\nname = "k"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = 128\n`);
    const applied = await node.agent(['apply', '-f', `${IN_STATE}/svc.toml`]);
    assert.equal(applied.exitCode, 0, applied.stderr);

    // Installed as the README's "Running as a service" says.
    await node.ok(['install', '-m', '0644', `${IN_CHECKOUT}/contrib/systemd/mcp-agent.service`, '/etc/systemd/system/']);
    await node.ok(['systemctl', 'daemon-reload']);
    await node.ok(['systemctl', 'enable', '--now', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'active');

    await waitFor('the VM to converge under systemd', async () => row(await status(node), svc, 'k').drift === 'in-sync', 120_000, 500);
    const first = await qemu(node, `${svc}-k`);
    assert.ok(first.alive, 'QEMU runs');
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    assert.ok(mainPid > 0);
    // QEMU was started from the service, so it sits in the service's cgroup (what issue 13 item 3 changes).
    const cg = (await node.ok(['cat', `/proc/${first.pid}/cgroup`])).trim();
    t.diagnostic(`QEMU pid ${first.pid}, cgroup ${cg}; agent MainPID ${mainPid}`);

    // stop: the agent alone gets SIGTERM (KillMode=process), exits 0 before TimeoutStopSec, QEMU stays.
    const stopStarted = Date.now();
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    t.diagnostic(`systemctl stop took ${Date.now() - stopStarted} ms (TimeoutStopSec=${await node.prop(UNIT, 'TimeoutStopUSec')})`);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'inactive');
    // Result=timeout would mean systemd had to SIGKILL the agent after TimeoutStopSec.
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    assert.equal(await node.prop(UNIT, 'ExecMainStatus'), '0');
    assert.equal((await qemu(node, `${svc}-k`)).alive, true, 'QEMU survives systemctl stop');

    // start: the new agent adopts the same QEMU; nothing is restarted.
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    const secondPid = Number(await node.prop(UNIT, 'MainPID'));
    assert.notEqual(secondPid, mainPid, 'a new agent process');
    await waitFor('the VM to be in sync again', async () => {
      const r = row(await status(node), svc, 'k');
      return r.drift === 'in-sync' && r.observed === 'running';
    }, 60_000, 500);
    const again = await qemu(node, `${svc}-k`);
    assert.equal(again.pid, first.pid, 'adopted: same QEMU pid');
    assert.equal(again.alive, true);
    assert.equal(row(await status(node), svc, 'k').restarts, 0);

    // The agent's own lines in the journal (its stderr) are pino JSON. `-u` also shows systemd's
    // lines about the unit (Started…, Stopping…, "remains running"): those come from PID 1.
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
});
