/**
 * Whether a running VM is on the network its spec asks for now. Pure. `network = "auto"` means
 * the bridge while it exists, SLIRP otherwise: a VM started on SLIRP before `agent net up` moves
 * to the bridge, and one whose bridge was removed moves to SLIRP (its TAP leads nowhere). A VM
 * cannot change networks in place (its address is fixed at boot), so the fix is a replace.
 */
import type { ComponentSpec } from '../manifest/schema.js';
import type { Observed } from '../runtime/types.js';

/** The host's VM bridge as the pass saw it. */
export interface BridgeFact {
  name: string;
  present: boolean;
  /** Its isolation rules are in place; undefined when not checked (no bridge). */
  isolated?: boolean | undefined;
  isolationDetail?: string | undefined;
  /** Other agents with VMs on this bridge (their registries lease the same addresses). */
  otherAgents?: string[] | undefined;
}

export interface NetworkDrift {
  reason: string;
  /** A replace would fix it; false when what the spec asks for cannot be had now. */
  fixable: boolean;
}

export function networkDrift(spec: ComponentSpec, current: Observed, bridge: BridgeFact | undefined): NetworkDrift | undefined {
  if (spec.runtime !== 'unikernel' || !bridge || (current.network !== 'slirp' && current.network !== 'bridge')) return undefined;
  // A bridge without its isolation rules, or shared with another agent, is no place for a VM:
  // auto stays on SLIRP meanwhile.
  const shared = (bridge.otherAgents ?? []).length > 0;
  const usable = bridge.present && bridge.isolated !== false && !shared;
  const wanted = spec.network === 'slirp' ? 'slirp' : spec.network === 'bridge' ? 'bridge' : usable ? 'bridge' : 'slirp';
  if (current.network === 'slirp') {
    return wanted === 'bridge' && usable ? { reason: `network ${spec.network}: bridge ${bridge.name} is there now, the VM runs on SLIRP`, fixable: true } : undefined;
  }
  if (!bridge.present) {
    return spec.network === 'bridge'
      ? { reason: `bridge ${bridge.name} is gone, the VM is cut off (agent net up brings the bridge back)`, fixable: false }
      : { reason: `network ${spec.network}: bridge ${bridge.name} is gone, the VM's TAP leads nowhere`, fixable: true };
  }
  if (bridge.isolated === false) {
    // Not a reason to restart the VM: the rules are what is missing, and a pass loads them.
    return { reason: `not isolated: the rules of bridge ${bridge.name} are not in place (${bridge.isolationDetail ?? 'unknown'}); each pass loads them again, agent net up does it now`, fixable: false };
  }
  if (shared) {
    // Not fixed by moving this VM: the other agent's leases are out of this registry's sight.
    return { reason: `shared bridge: ${bridge.name} also carries VMs of agent ${bridge.otherAgents!.join(', ')}, whose addresses may collide with this agent's; give each agent its own bridge`, fixable: false };
  }
  if (current.networkProblem) return { reason: `unreachable: ${current.networkProblem}`, fixable: true };
  return undefined;
}
