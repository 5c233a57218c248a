/**
 * Placing a VM before it starts: its boot files (inside the allowed image directories), the SSH
 * host key to pin, the agent's SSH key, and the leases of the network the planner chose for it
 * (network-drift.ts `vmNetwork`: placement never asks the host which network to use). On the
 * bridge, an IP; on SLIRP, host ports. Leases are taken in the registry (PRIMARY KEY: one owner),
 * preferred value first, the next free one on a collision, and kept across restarts: the lease a
 * component already holds is reused while it can be (a port while it can be bound).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { VmPaths } from '../config/config.js';
import { RuntimeError, type ComponentKey } from '../errors.js';
import type { ComponentSpec } from '../manifest/schema.js';
import type { Registry } from '../registry/index.js';
import type { VmPlacement } from '../runtime/types.js';
import { resolveBootFiles, resolveBootPath } from './images.js';
import { candidatePorts, preferredSshPort, SERVICE_PORT_RANGE, SSH_PORT_RANGE } from './ports.js';
import type { BridgeSettings } from '../net/types.js';
import type { VmNetwork } from './network-drift.js';
import { ipToInt, parseSubnet, pickIp, tapName, vmAddresses } from '../net/plan.js';

/** Whether anyone (any process, any agent) holds the port on 127.0.0.1 right now. */
export function portBindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

const fail = (workload: string, message: string): never => {
  throw new RuntimeError('qemu', 'place', workload, message);
};

export function resolveHostKey(spec: ComponentSpec, imagesDirs: string[], workload: string): string {
  const v = spec.ssh_host_key ?? 'host_key.pub';
  if (/^(ssh-|ecdsa-)/.test(v)) return v.trim();
  const r = resolveBootPath(v, imagesDirs);
  if (!r.ok) return fail(workload, `ssh_host_key ${r.rule}`);
  let text: string;
  try {
    text = readFileSync(r.path, 'utf8');
  } catch {
    return fail(workload, `no SSH host key to pin: ${r.path} is missing (set ssh_host_key, or put the guest's host_key.pub there)`);
  }
  const line = text.split('\n').find((l) => /^(ssh-|ecdsa-)/.test(l));
  return line ? line.trim() : fail(workload, `${r.path} holds no public key line`);
}

/** The agent's SSH key must be readable before QEMU starts: without it no readiness check can pass. */
export function checkSshKey(sshKey: string, workload: string): void {
  try {
    accessSync(sshKey, constants.R_OK);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : 'cannot be read';
    fail(workload, `no SSH key to reach the guest: ${sshKey} ${why} (set qemu.ssh_key, or put the private key the guest trusts there)`);
  }
}

async function leasePort(registry: Registry, key: ComponentKey, workload: string, purpose: string, preferred: number, range: { first: number; last: number }, fixed: boolean): Promise<number> {
  const held = registry.leases.forComponent(key).find((l) => l.kind === 'host_port' && l.purpose === purpose);
  if (held) {
    const port = Number(held.value);
    if ((!fixed || port === preferred) && (await portBindable(port))) return port;
    registry.leases.release('host_port', held.value);
  }
  if (fixed) {
    if (!(await portBindable(preferred))) fail(workload, `host port ${preferred} (${purpose}) is in use on 127.0.0.1`);
    if (!registry.leases.take('host_port', String(preferred), key, purpose)) fail(workload, `host port ${preferred} (${purpose}) is leased to another component`);
    return preferred;
  }
  const leased = new Set(registry.leases.all().filter((l) => l.kind === 'host_port').map((l) => Number(l.value)));
  for (const port of candidatePorts(preferred, range)) {
    if (leased.has(port) || !(await portBindable(port))) continue;
    if (registry.leases.take('host_port', String(port), key, purpose)) return port;
  }
  return fail(workload, `no free host port for ${purpose} in ${range.first}-${range.last}`);
}

/** The component's IP on the bridge: the one it holds if still in the subnet, else the lowest free. */
function leaseIp(registry: Registry, key: ComponentKey, workload: string, net: BridgeSettings, subnetCidr: string): string {
  const subnet = parseSubnet(subnetCidr);
  const { first, last } = vmAddresses(subnet);
  const inSubnet = (ip: string): boolean => {
    const n = ipToInt(ip);
    return n >= first && n <= last;
  };
  const held = registry.leases.forComponent(key).find((l) => l.kind === 'ip');
  if (held && inSubnet(held.value)) return held.value;
  if (held) registry.leases.release('ip', held.value);
  for (;;) {
    const taken = new Set(registry.leases.all().filter((l) => l.kind === 'ip').map((l) => l.value));
    taken.add(net.gateway);
    const ip = pickIp(subnet, taken);
    if (!ip) return fail(workload, `no free address left in ${subnetCidr} for this component (every VM address is leased)`);
    if (registry.leases.take('ip', ip, key, 'bridge')) return ip;
  }
}

export interface NetPlacementSettings {
  bridge: BridgeSettings;
  subnet: string;
}

/**
 * The VM's boot files, keys and the leases of `network`. Throws, naming the rule, when the
 * network was refused or its leases cannot be had (no free address, a fixed port in use).
 */
export async function placeVm(registry: Registry, paths: VmPaths, net: NetPlacementSettings, key: ComponentKey, workload: string, spec: ComponentSpec, network: VmNetwork): Promise<VmPlacement> {
  const { files, issues } = resolveBootFiles(spec, paths.imagesDirs);
  if (issues.length > 0) fail(workload, issues.map((i) => `${i.field} ${i.rule}`).join('; '));
  const hostKey = resolveHostKey(spec, paths.imagesDirs, workload);
  checkSshKey(paths.sshKey, workload);
  if (network.mode === 'refused') fail(workload, `network '${spec.network}': ${network.why}`);
  if (network.mode === 'bridge') {
    const ip = leaseIp(registry, key, workload, net.bridge, net.subnet);
    // Host ports belong to SLIRP mode: give them back.
    for (const l of registry.leases.forComponent(key)) if (l.kind === 'host_port') registry.leases.release(l.kind, l.value);
    return { files, hostKey, net: { mode: 'bridge', bridge: net.bridge.bridge, tap: tapName(workload), ip, prefix: net.bridge.prefix, gateway: net.bridge.gateway } };
  }
  for (const l of registry.leases.forComponent(key)) if (l.kind === 'ip') registry.leases.release(l.kind, l.value);

  const sshPort = await leasePort(registry, key, workload, 'ssh', preferredSshPort(workload), SSH_PORT_RANGE, false);
  const forwards: Array<{ host: number; guest: number; protocol: 'tcp' | 'udp' }> = [];
  const purposes = new Set(['ssh']);
  for (const p of spec.ports) {
    const purpose = `${p.protocol}/${p.guest}`;
    purposes.add(purpose);
    const host = await leasePort(registry, key, workload, purpose, p.host ?? SERVICE_PORT_RANGE.first, SERVICE_PORT_RANGE, p.host !== undefined);
    forwards.push({ host, guest: p.guest, protocol: p.protocol });
  }
  // Ports the spec no longer declares are given back.
  for (const l of registry.leases.forComponent(key)) {
    if (l.kind === 'host_port' && !purposes.has(l.purpose)) registry.leases.release(l.kind, l.value);
  }
  return { files, hostKey, net: { mode: 'slirp', sshPort, forwards } };
}
