// Readiness and watchdog under a real systemd (issue 13, item 2): contrib/systemd's unit is
// Type=notify with WatchdogSec=. `systemctl start` returns only after the agent's first pass, the
// summary reaches StatusText, and an agent whose loop stops completing passes (SIGSTOP, or a pass
// stuck on a runtime command that hangs) is restarted by systemd's watchdog and adopts its VM.
// Skips only where podman cannot run systemd at all (not root, no podman).
import { strict as assert } from 'node:assert';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor, row } from '../helpers/agent.js';
import { SystemdNode, systemdUnavailable, IN_STATE } from '../helpers/systemd-node.js';
import { agentStatus, applyVm, placeUnit, restartedAgent, vmQemu, UNIT, vmInSync } from '../helpers/systemd-service.js';

const skip = await systemdUnavailable();

// The watchdog tests shorten WatchdogSec with a drop-in, only so that they wait 10 s, not 30 s,
// for systemd to act; everything else is the shipped unit.
const SHORT_WATCHDOG = 'WatchdogSec=10';

/** systemd's own lines about the unit (not the agent's JSON). */
async function systemdLines(node: SystemdNode): Promise<string[]> {
  const all = await node.ok(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
  return all.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
}

/**
 * A podman that lists no containers (there is none inside), installed through the settings file
 * with the CLI only (`api = "off"`). Its first `ps` takes 5 s (a runtime slow to list: the first
 * pass waits for it); `ps` after the file <state>/hang appears sleeps far past its bound (once).
 */
async function fakePodman(node: SystemdNode, settings = ''): Promise<void> {
  const fake = join(node.stateDir, 'fake-podman');
  writeFileSync(fake, `#!/bin/sh
case "$1" in
  ps)
    if [ ! -e ${IN_STATE}/ps-seen ]; then touch ${IN_STATE}/ps-seen; sleep 5; fi
    if [ -e ${IN_STATE}/hang ]; then rm -f ${IN_STATE}/hang; exec sleep 100000; fi
    echo '[]' ;;
  version) echo 4.3.1 ;;
  events) exec sleep 100000 ;;
  *) echo "fake podman: $*" >&2; exit 125 ;;
esac
`);
  chmodSync(fake, 0o755);
  await node.ok(['mkdir', '-p', '/etc/mcp-agent']);
  await node.ok(['sh', '-c', 'cat > /etc/mcp-agent/agent.toml'], {
    input: `${settings}\n[podman]\nbinary = "${IN_STATE}/fake-podman"\nlist_timeout_seconds = 600\napi = "off"\n`,
  });
}

/** When the unit last became active (systemd received READY=1), in ms since the epoch. */
async function activeSince(node: SystemdNode): Promise<number> {
  const v = (await node.ok(['systemctl', 'show', UNIT, '-p', 'ActiveEnterTimestamp', '--value', '--timestamp=us+utc'])).trim();
  // "Mon 2026-11-30 04:53:33.664123 UTC"
  const m = /(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{6}) UTC/.exec(v);
  if (!m) throw new Error(`unexpected ActiveEnterTimestamp: ${v}`);
  return Date.parse(`${m[1]}T${m[2]}.${m[3]!.slice(0, 3)}Z`);
}

describe('readiness and watchdog under a real systemd', { skip }, () => {
  it('systemctl start returns after the first pass: status already shows the VM handled, StatusText the summary', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node, { prefix: 'sdn' });
    await fakePodman(node);
    await placeUnit(node);
    assert.equal(await node.prop(UNIT, 'Type'), 'notify');

    await node.ok(['systemctl', 'start', 'mcp-agent']);
    // Right after start returned, with nothing waited for: READY=1 came, so the first pass is done.
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'active');
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    const s = await agentStatus(node);
    assert.equal(s.agent.running, true, JSON.stringify(s.agent));
    assert.equal(s.agent.pid, mainPid);
    const r = row(s, svc, 'k');
    t.diagnostic(`right after start: ${JSON.stringify({ drift: r.drift, observed: r.observed, last_event: r.last_event, next_action: r.next_action })}`);
    // The first pass (held 5 s by podman's first listing) dispatched the VM's start: its event is
    // in the registry, written before systemd marked the unit active (READY=1 came after it).
    assert.equal(r.last_event?.action, 'start', JSON.stringify(r));
    const eventAt = Date.parse((r.last_event as { at?: string } | null)?.at ?? '');
    const readyAt = await activeSince(node);
    t.diagnostic(`start event ${new Date(eventAt).toISOString()}, unit active ${new Date(readyAt).toISOString()}`);
    assert.ok(eventAt <= readyAt, `READY=1 came before the first pass dispatched the start (${eventAt} > ${readyAt})`);
    assert.equal(await node.prop(UNIT, 'StatusText'), '1 missing');

    // STATUS= follows the passes: once the VM runs, the summary says so.
    await vmInSync(node, svc, 'the VM to converge');
    const last = await waitFor('StatusText to say 1 in sync', async () => {
      const st = await node.prop(UNIT, 'StatusText');
      return st === '1 in sync' ? st : undefined;
    }, 30_000, 250);
    t.diagnostic(`StatusText once in sync: ${last}; WatchdogUSec=${await node.prop(UNIT, 'WatchdogUSec')}`);
    assert.equal(await node.prop(UNIT, 'NRestarts'), '0');

    // stop: STOPPING=1 and a clean exit, as before.
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    assert.equal((await vmQemu(node, `${svc}-k`)).alive, true, 'QEMU survives systemctl stop');
  });

  it('SIGSTOP of the agent: the watchdog restarts it (Result=watchdog) and the new agent adopts the VM', async (t) => {
    const { node } = await SystemdNode.boot({ guestImages: true });
    t.after(() => node.cleanup());
    const svc = await applyVm(node, { prefix: 'sdn' });
    await placeUnit(node, SHORT_WATCHDOG);
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    await vmInSync(node, svc, 'the VM to converge');
    const vm = await vmQemu(node, `${svc}-k`);
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    // Idle and healthy: no restart while the watchdog runs a few periods (passes complete).
    assert.equal(await node.prop(UNIT, 'NRestarts'), '0');

    await node.ok(['kill', '-STOP', String(mainPid)]);
    const newPid = await restartedAgent(node, mainPid, 60_000);
    t.diagnostic(`agent ${mainPid} stopped; systemd started ${newPid}`);
    assert.equal(await node.prop(UNIT, 'NRestarts'), '1');
    const lines = await systemdLines(node);
    assert.ok(lines.some((l) => /Watchdog timeout/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /Failed with result 'watchdog'/.test(l)), lines.join('\n'));
    await vmInSync(node, svc, 'the VM to be in sync after the watchdog restart');
    const after = await vmQemu(node, `${svc}-k`);
    assert.equal(after.pid, vm.pid, 'adopted: same QEMU pid');
    assert.equal(after.alive, true);
    assert.equal(row(await agentStatus(node), svc, 'k').restarts, 0);
  });

  it('a pass stuck on a runtime command that hangs: no more pings, the watchdog restarts the agent', async (t) => {
    const { node } = await SystemdNode.boot();
    t.after(() => node.cleanup());
    // A resync every 2 s lists podman again soon after the hang file appears; that `ps` sleeps
    // past its bound (600 s), so the pass that asked waits on it.
    await fakePodman(node, 'resync = "*/2 * * * * *"\n');
    await placeUnit(node, SHORT_WATCHDOG);
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    const mainPid = Number(await node.prop(UNIT, 'MainPID'));
    assert.equal(await node.prop(UNIT, 'StatusText'), 'no workloads');

    writeFileSync(join(node.stateDir, 'hang'), '');
    const newPid = await restartedAgent(node, mainPid, 60_000);
    t.diagnostic(`agent ${mainPid} stuck in podman ps; systemd started ${newPid}`);
    const lines = await systemdLines(node);
    assert.ok(lines.some((l) => /Failed with result 'watchdog'/.test(l)), lines.join('\n'));
    assert.equal(await node.prop(UNIT, 'NRestarts'), '1');
    // The hang was taken (the fake's next ps answers): the new agent's first pass completed (READY).
    assert.equal((await node.exec(['test', '-e', `${IN_STATE}/hang`])).exitCode, 1);
    assert.equal((await agentStatus(node)).agent.pid, newPid);
  });
});
