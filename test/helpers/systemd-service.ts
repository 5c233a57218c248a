// The agent's service inside a SystemdNode (test/helpers/systemd-node.ts), for the systemd suites:
// install contrib/systemd's unit as the README says, apply one VM service, read the agent's status
// and a VM's QEMU from inside. One copy of these steps for every suite that needs them.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, waitFor, row, type StatusJson } from './agent.js';
import { IN_CHECKOUT, IN_STATE, type SystemdNode } from './systemd-node.js';

export const UNIT = 'mcp-agent.service';

export async function agentStatus(node: SystemdNode): Promise<StatusJson> {
  const r = await node.agent(['status', '--json']);
  if (r.exitCode !== 0) throw new Error(`status exited ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

/**
 * The VM's QEMU pid (in the container's pid namespace) from its pidfile, and whether it lives. No
 * pidfile is "not running": QEMU deletes its own pidfile when it exits cleanly.
 */
export async function vmQemu(node: SystemdNode, workload: string): Promise<{ pid: number | undefined; alive: boolean }> {
  const r = await node.exec(['cat', `${IN_STATE}/vm/${workload}/qemu.pid`]);
  if (r.exitCode !== 0 || r.stdout.trim() === '') return { pid: undefined, alive: false };
  const pid = Number(r.stdout.trim());
  return { pid, alive: await pidAlive(node, pid) };
}

/** Whether a process lives inside the node; state Z (a zombie PID 1 has not reaped yet) counts as gone (HOST-FACTS). */
export async function pidAlive(node: SystemdNode, pid: number): Promise<boolean> {
  const st = await node.exec(['sh', '-c', `awk '{print $3}' /proc/${pid}/stat`]);
  return st.exitCode === 0 && st.stdout.trim() !== '' && st.stdout.trim() !== 'Z';
}

/** The process's cgroup in systemd's own hierarchy (cgroup v1 `name=systemd`, or v2's single one). */
export async function systemdCgroup(node: SystemdNode, pid: number): Promise<string> {
  const lines = (await node.ok(['cat', `/proc/${pid}/cgroup`])).trim().split('\n');
  const line = lines.find((l) => l.includes(':name=systemd:')) ?? lines.find((l) => l.startsWith('0::'));
  assert.ok(line, `no systemd cgroup for ${pid} in ${lines.join(' | ')}`);
  return line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
}

/** Copies contrib/systemd's unit in and reloads (no start), plus an optional drop-in (`[Service]` lines). */
export async function placeUnit(node: SystemdNode, dropIn?: string): Promise<void> {
  await node.ok(['install', '-m', '0644', `${IN_CHECKOUT}/contrib/systemd/mcp-agent.service`, '/etc/systemd/system/']);
  if (dropIn !== undefined) {
    await node.ok(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
    await node.ok(['sh', '-c', `cat > /etc/systemd/system/${UNIT}.d/test.conf`], { input: `[Service]\n${dropIn}\n` });
  }
  await node.ok(['systemctl', 'daemon-reload']);
}

/** Installs contrib/systemd's unit as the README's "Running as a service" says (enable --now). */
export async function installUnit(node: SystemdNode): Promise<void> {
  await placeUnit(node);
  await node.ok(['systemctl', 'enable', '--now', 'mcp-agent']);
}

/** Writes a manifest into the node's state dir and applies it with the CLI inside. */
export async function applyToml(node: SystemdNode, file: string, toml: string): Promise<void> {
  writeFileSync(join(node.stateDir, file), toml);
  const r = await node.agent(['apply', '-f', `${IN_STATE}/${file}`]);
  assert.equal(r.exitCode, 0, r.stderr);
}

/** One VM service (kernel + initrd from the guest image, component `k`); returns its name. */
export async function applyVm(node: SystemdNode, o: { prefix?: string; memory?: number; vcpus?: number } = {}): Promise<string> {
  const svc = TestNode.serviceName(o.prefix ?? 'sd');
  const vcpus = o.vcpus === undefined ? '' : `vcpus = ${o.vcpus}\n`;
  writeFileSync(join(node.stateDir, 'svc.toml'), `name = "${svc}"\nruntime = "unikernel"\n\n[[components]]\nname = "k"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = ${o.memory ?? 128}\n${vcpus}`);
  const applied = await node.agent(['apply', '-f', `${IN_STATE}/svc.toml`]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  return svc;
}

/** Waits until the service's component `k` is in sync and running. */
export async function vmInSync(node: SystemdNode, svc: string, what: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(what, async () => {
    const r = row(await agentStatus(node), svc, 'k');
    return r.drift === 'in-sync' && r.observed === 'running';
  }, timeoutMs, 500);
}

/** Waits for systemd to have started a new agent after `oldPid`, and for it to be active (READY); returns its pid. */
export async function restartedAgent(node: SystemdNode, oldPid: number, timeoutMs = 30_000): Promise<number> {
  return waitFor('systemd to restart the agent', async () => {
    const p = Number(await node.prop(UNIT, 'MainPID'));
    return p > 0 && p !== oldPid && (await node.prop(UNIT, 'ActiveState')) === 'active' ? p : undefined;
  }, timeoutMs, 250);
}
