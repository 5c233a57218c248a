/**
 * Placing a VM before it starts: its boot files (inside the allowed image directories), the SSH
 * host key to pin, the agent's SSH key, and its host ports. Ports are leased in the registry
 * (PRIMARY KEY: one owner), preferred port first, the next free one on a collision, and kept
 * across restarts: the lease a component already holds is reused while its port can be bound.
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
import type { BridgeSettings, HostNet } from '../net/types.js';
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
  /** The host's bridge, rules and TAPs, asked before a VM goes on the bridge. */
  host: HostNet;
}

export async function placeVm(registry: Registry, paths: VmPaths, net: NetPlacementSettings, key: ComponentKey, workload: string, spec: ComponentSpec): Promise<VmPlacement> {
  const { files, issues } = resolveBootFiles(spec, paths.imagesDirs);
  if (issues.length > 0) fail(workload, issues.map((i) => `${i.field} ${i.rule}`).join('; '));
  const hostKey = resolveHostKey(spec, paths.imagesDirs, workload);
  checkSshKey(paths.sshKey, workload);

  // auto: the bridge when it exists with its isolation rules (loaded again here if they went
  // missing) and no other agent's VMs, else SLIRP. No VM is ever put on a bridge where it could
  // reach the others, or where its address could be another agent's.
  const present = spec.network === 'slirp' ? false : (await net.host.bridgePresence(net.bridge.bridge)) === true;
  if (spec.network === 'bridge' && !present) fail(workload, `network 'bridge': the bridge ${net.bridge.bridge} does not exist (agent net up creates it)`);
  // Two checks before a VM goes on the bridge, run side by side: its isolation rules are in
  // place, and no other agent's VMs are on it (that agent's registry leases the same addresses).
  let usable = false;
  if (present) {
    const [rules, others] = await Promise.allSettled([net.host.ensureRules(net.bridge), net.host.otherAgentsOnBridge(net.bridge.bridge, registry.meta.agentId())]);
    const why =
      rules.status === 'rejected'
        ? `the isolation rules of ${net.bridge.bridge} are not in place and cannot be loaded: ${(rules.reason as Error).message}`
        : others.status === 'rejected'
          ? `cannot tell whether another agent uses ${net.bridge.bridge}: ${(others.reason as Error).message}`
          : others.value.length > 0
            ? `the bridge ${net.bridge.bridge} carries VMs of another agent (${others.value.join(', ')}): two registries on one bridge would lease the same addresses`
            : undefined;
    if (why && spec.network === 'bridge') fail(workload, `network 'bridge': ${why}`);
    usable = !why;
  }
  if (usable) {
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
