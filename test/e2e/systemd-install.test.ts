// The install story of the README's "Running as a service" (issue 13, item 4), done step by step
// under a real systemd (test/helpers/systemd-node.ts): settings in /etc/mcp-agent/agent.toml, the
// unit installed, `agent doctor` judging the unit; an upgrade (stop, swap the checkout, start)
// that adopts the running container and VM; an uninstall that leaves nothing behind.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestNode, waitFor, containerService, vmService, SLEEP, VM_KERNEL, type StatusJson } from '../helpers/agent.js';
import { SystemdNode, systemdUnavailable, IN_STATE, IN_CHECKOUT, IN_DB } from '../helpers/systemd-node.js';
import { UNIT } from '../helpers/systemd-service.js';

const skip = await systemdUnavailable();

/**
 * The CLI as an operator on the node types it: `agent` on PATH (the README's symlink), no --db
 * (the settings file names the registry).
 */
function cli(node: SystemdNode, args: string[]): ReturnType<SystemdNode['exec']> {
  return node.exec(['env', 'AGENT_LOG_LEVEL=warn', 'agent', ...args]);
}

async function status(node: SystemdNode): Promise<StatusJson> {
  const r = await cli(node, ['status', '--json']);
  if (r.exitCode !== 0) throw new Error(`status exited ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

/** The README's steps (after the build): settings file, the CLI on PATH, unit file, daemon-reload, enable --now. */
async function install(node: SystemdNode): Promise<void> {
  await node.ok(['mkdir', '-p', '/etc/mcp-agent']);
  await node.ok(['ln', '-sf', `${IN_CHECKOUT}/bin/agent.js`, '/usr/local/bin/agent']);
  await node.ok(['sh', '-c', `printf 'db = "%s"\\n' ${IN_DB} > /etc/mcp-agent/agent.toml`]);
  await node.ok(['install', '-m', '0644', `${IN_CHECKOUT}/contrib/systemd/mcp-agent.service`, '/etc/systemd/system/']);
  await node.ok(['systemctl', 'daemon-reload']);
  await node.ok(['systemctl', 'enable', '--now', 'mcp-agent']);
}

async function apply(node: SystemdNode, file: string, toml: string): Promise<void> {
  writeFileSync(join(node.stateDir, file), toml);
  const r = await cli(node, ['apply', '-f', `${IN_STATE}/${file}`]);
  assert.equal(r.exitCode, 0, r.stderr);
}

async function settled(node: SystemdNode, what: string): Promise<StatusJson> {
  return waitFor(what, async () => {
    const s = await status(node);
    return s.components.length > 0 && s.components.every((c) => c.drift === 'in-sync' && c.observed === 'running') ? s : undefined;
  }, 120_000, 500);
}

interface DoctorCheck {
  name: string;
  status: string;
  detail: string;
  fix: string | null;
  facts: Record<string, unknown>;
}

async function doctorSystemd(node: SystemdNode): Promise<DoctorCheck> {
  const r = await cli(node, ['doctor', '--json']);
  const doc = JSON.parse(r.stdout) as { checks: DoctorCheck[] };
  const c = doc.checks.find((x) => x.name === 'systemd');
  assert.ok(c, r.stdout);
  return c;
}

/** Pids of the workloads: the container's main process and conmon (podman inside), QEMU (its pidfile). */
async function pids(node: SystemdNode, container: string, vm: string): Promise<{ container: string; qemu: string }> {
  const c = (await node.ok(['podman', 'inspect', '--format', '{{.Id}} {{.State.Pid}} {{.State.ConmonPid}}', container])).trim();
  const q = (await node.ok(['cat', `${IN_STATE}/vm/${vm}/qemu.pid`])).trim();
  return { container: c, qemu: q };
}

describe('installing, upgrading and removing the agent as a systemd service', { skip }, () => {
  it('install as the README says: the CLI finds the registry through /etc/mcp-agent/agent.toml; doctor judges the unit (KillMode=control-group warns)', async (t) => {
    const { node } = await SystemdNode.boot({ containers: true });
    t.after(() => node.cleanup());
    await install(node);
    assert.equal(await node.prop(UNIT, 'ActiveState'), 'active');
    // No --db anywhere: the settings file names the service's registry (the unit's AGENT_DB names the same).
    const s = await waitFor('the CLI to see the running agent', async () => ((await status(node)).agent.running ? status(node) : undefined), 30_000, 250);
    assert.equal(s.registry.path, IN_DB);
    assert.equal(s.agent.pid, Number(await node.prop(UNIT, 'MainPID')), 'the agent the CLI talks to is the unit\'s main process');

    const good = await doctorSystemd(node);
    t.diagnostic(`doctor systemd: ${good.status}: ${good.detail}`);
    assert.equal(good.status, 'ok', good.detail);
    assert.equal(good.facts.KillMode, 'process');
    assert.equal(good.facts.ActiveState, 'active');

    // A unit changed by hand (a drop-in, as `systemctl edit` makes): the doctor warns and names it.
    await node.ok(['mkdir', '-p', '/etc/systemd/system/mcp-agent.service.d']);
    await node.ok(['sh', '-c', 'printf "[Service]\\nKillMode=control-group\\n" > /etc/systemd/system/mcp-agent.service.d/kill.conf']);
    await node.ok(['systemctl', 'daemon-reload']);
    const bad = await doctorSystemd(node);
    t.diagnostic(`doctor systemd with the drop-in: ${bad.status}: ${bad.detail}`);
    assert.equal(bad.status, 'warn');
    assert.match(bad.detail, /KillMode=control-group, want process/);
    assert.match(bad.fix ?? '', /KillMode=process/);
  });

  it('upgrade: stop, swap the checkout for a new build, start: the new code runs and adopts the same container and QEMU', async (t) => {
    const { node } = await SystemdNode.boot({ containers: true, guestImages: true });
    t.after(() => node.cleanup());
    const ctr = TestNode.serviceName('sdu');
    const vm = TestNode.serviceName('sdu');
    await install(node);
    await apply(node, 'ctr.toml', containerService(ctr, { c: SLEEP }));
    await apply(node, 'vm.toml', vmService(vm, { k: VM_KERNEL }));
    const before = await settled(node, 'the container and the VM to converge');
    const ctrName = before.components.find((c) => c.service === ctr)!.workload;
    const vmName = before.components.find((c) => c.service === vm)!.workload;
    const first = await pids(node, ctrName, vmName);

    // The new build beside the old one: what package.json's `files` ships (bin, dist, migrations,
    // examples) plus package.json and contrib, with a visible change (the version, and a line the
    // new code logs at start); node_modules shared through the old checkout's path.
    const version = (await node.ok(['node', `${IN_CHECKOUT}/bin/agent.js`, '--version'])).trim();
    writeFileSync(join(node.stateDir, 'marker.js'), "process.stderr.write(JSON.stringify({ level: 30, msg: 'upgrade marker' }) + '\\n');\n");
    await node.ok(['sh', '-c', [
      `mkdir -p /srv/old /srv/next && mount --bind ${IN_CHECKOUT} /srv/old`,
      'cp -a /srv/old/bin /srv/old/dist /srv/old/migrations /srv/old/examples /srv/old/contrib /srv/old/package.json /srv/next/',
      'ln -s /srv/old/node_modules /srv/next/node_modules',
      `sed -i 's/"version": "${version}"/"version": "${version}-upgraded"/' /srv/next/package.json`,
      `sed -i '2r ${IN_STATE}/marker.js' /srv/next/bin/agent.js`,
    ].join(' && ')]);

    // The upgrade: stop, replace the checkout at its path (a bind mount stands in for `mv`: the
    // test's checkout is itself a mount point), start.
    await node.ok(['systemctl', 'stop', 'mcp-agent']);
    assert.equal(await node.prop(UNIT, 'Result'), 'success');
    await node.ok(['mount', '--bind', '/srv/next', IN_CHECKOUT]);
    await node.ok(['systemctl', 'start', 'mcp-agent']);
    assert.equal((await cli(node, ['--version'])).stdout.trim(), `${version}-upgraded`);
    const after = await settled(node, 'both to be in sync under the new build');
    const journal = await node.ok(['journalctl', `_SYSTEMD_UNIT=${UNIT}`, `_PID=${await node.prop(UNIT, 'MainPID')}`, '-o', 'cat', '--no-pager']);
    assert.match(journal, /upgrade marker/, 'the service runs the new build');
    assert.deepEqual(await pids(node, ctrName, vmName), first, 'adopted: same container id, pid, conmon and QEMU pid');
    for (const c of after.components) assert.equal(c.restarts, 0, `${c.service}/${c.component} restarted`);
  });

  it('uninstall: delete the services, disable --now, remove the unit: no unit, no container, no QEMU left', async (t) => {
    const { node } = await SystemdNode.boot({ containers: true });
    t.after(() => node.cleanup());
    const ctr = TestNode.serviceName('sdr');
    await install(node);
    await apply(node, 'ctr.toml', containerService(ctr, { c: SLEEP }));
    await settled(node, 'the container to converge');
    // The workloads go first, while the agent still runs: it stops and removes them.
    assert.equal((await cli(node, ['delete', ctr])).exitCode, 0);
    await waitFor('the agent to remove the container', async () => (await node.ok(['podman', 'ps', '-a', '--format', '{{.Names}}'])).trim() === '', 60_000, 500);
    await node.ok(['systemctl', 'disable', '--now', 'mcp-agent']);
    await node.ok(['rm', '/etc/systemd/system/mcp-agent.service']);
    await node.ok(['systemctl', 'daemon-reload']);
    assert.equal(await node.prop(UNIT, 'LoadState'), 'not-found');
    assert.equal((await node.exec(['pgrep', '-f', 'agent.js run'])).exitCode, 1, 'no agent left running');
    assert.equal((await node.exec(['pgrep', '-x', 'conmon'])).exitCode, 1, 'no conmon left');
    // What is left is state and settings, for the operator to keep or remove.
    const left = (await node.ok(['ls', IN_STATE])).trim().split('\n');
    t.diagnostic(`left in ${IN_STATE}: ${left.join(' ')}`);
    assert.ok(left.includes('agent.db'));
  });
});
