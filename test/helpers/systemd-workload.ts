// What the systemd tests do with the agent's service and its one VM inside a SystemdNode: install
// contrib/systemd's unit (as the README says), apply a VM, read status and the VM's QEMU.
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

/** The VM's QEMU pid from its pidfile, and whether it lives (state Z counts as gone: HOST-FACTS). */
export async function qemuOf(node: SystemdNode, workload: string): Promise<{ pid: number | undefined; alive: boolean }> {
  const r = await node.exec(['cat', `${IN_STATE}/vm/${workload}/qemu.pid`]);
  if (r.exitCode !== 0 || r.stdout.trim() === '') return { pid: undefined, alive: false };
  const pid = Number(r.stdout.trim());
  const st = await node.exec(['sh', '-c', `awk '{print $3}' /proc/${pid}/stat`]);
  return { pid, alive: st.exitCode === 0 && st.stdout.trim() !== '' && st.stdout.trim() !== 'Z' };
}

/** Copies the unit in and reloads (no start), plus an optional drop-in (`[Service]` lines). */
export async function placeUnit(node: SystemdNode, dropIn?: string): Promise<void> {
  await node.ok(['install', '-m', '0644', `${IN_CHECKOUT}/contrib/systemd/mcp-agent.service`, '/etc/systemd/system/']);
  if (dropIn !== undefined) {
    await node.ok(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
    await node.ok(['sh', '-c', `cat > /etc/systemd/system/${UNIT}.d/test.conf`], { input: `[Service]\n${dropIn}\n` });
  }
  await node.ok(['systemctl', 'daemon-reload']);
}

/** One VM service (kernel + initrd from the guest image), applied before the agent starts. */
export async function applyVm(node: SystemdNode, prefix: string): Promise<string> {
  const svc = TestNode.serviceName(prefix);
  writeFileSync(join(node.stateDir, 'svc.toml'), `name = "${svc}"\nruntime = "unikernel"\n\n[[components]]\nname = "k"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = 128\n`);
  const applied = await node.agent(['apply', '-f', `${IN_STATE}/svc.toml`]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  return svc;
}

export async function vmInSync(node: SystemdNode, svc: string, what: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(what, async () => {
    const r = row(await agentStatus(node), svc, 'k');
    return r.drift === 'in-sync' && r.observed === 'running';
  }, timeoutMs, 500);
}
