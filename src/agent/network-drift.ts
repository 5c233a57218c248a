/**
 * The VM network rules, pure, in one place: whether the host's bridge may take a VM now
 * (`bridgeUse`), which network a VM start goes on (`vmNetwork`, decided by the planner and carried
 * on the action), and whether a running VM is on the network its spec asks for (`networkDrift`).
 * `network = "auto"` means the bridge while it is usable, SLIRP otherwise: a VM started on SLIRP
 * before `agent net up` moves to the bridge, and one whose bridge was removed moves to SLIRP (its
 * TAP leads nowhere). A VM cannot change networks in place (its address is fixed at boot), so the
 * fix is a replace. Invariant: no VM is put on a bridge without its isolation rules, or on one
 * where another agent's VMs are (or may be: see `bridgeUse`).
 */
import type { ComponentSpec } from '../manifest/schema.js';
import type { Observed } from '../runtime/types.js';

/** The host's VM bridge as the pass saw it (one look per pass, in observe). */
export interface BridgeFact {
  name: string;
  /** Undefined when `ip` could not tell: VM networks are then not checked, and no VM goes on it. */
  present: boolean | undefined;
  /** Its isolation rules are in place; undefined when not checked (no bridge). */
  isolated?: boolean | undefined;
  isolationDetail?: string | undefined;
  /** nft answered when the rules were checked: loading them again can work. */
  rulesLoadable?: boolean | undefined;
  /** Loading the rules again failed since this fact was observed: not tried again until it is observed anew. */
  repairError?: string | undefined;
  /** Other agents with VMs on this bridge (their registries lease the same addresses). */
  otherAgents?: string[] | undefined;
  /** Set when `ip` could not tell whether other agents use the bridge: why. */
  sharingUnknown?: string | undefined;
}

export type BridgeUse =
  /** `afterRepair`: only once its isolation rules are loaded again (the same pass does it first). */
  | { usable: true; afterRepair: boolean }
  | { usable: false; why: string };

/**
 * Whether a VM may be put on the bridge. When `ip` cannot tell whether other agents use it, the
 * answer is no (the safe side): a second registry on the bridge would lease the same addresses,
 * and a VM on SLIRP is reachable and moved once the bridge is known to be ours alone.
 */
export function bridgeUse(b: BridgeFact | undefined): BridgeUse {
  if (!b) return { usable: false, why: 'the bridge was not looked at this pass' };
  if (b.present === undefined) return { usable: false, why: `cannot tell whether the bridge ${b.name} exists (ip did not answer)` };
  if (!b.present) return { usable: false, why: `the bridge ${b.name} does not exist (agent net up creates it)` };
  if (b.isolated === false && (b.repairError !== undefined || b.rulesLoadable === false)) {
    return { usable: false, why: `the isolation rules of ${b.name} are not in place and cannot be loaded: ${b.repairError ?? b.isolationDetail ?? 'nft does not answer'}` };
  }
  if (b.sharingUnknown !== undefined) return { usable: false, why: `cannot tell whether another agent uses ${b.name}: ${b.sharingUnknown}` };
  const others = b.otherAgents ?? [];
  if (others.length > 0) {
    return { usable: false, why: `the bridge ${b.name} carries VMs of another agent (${others.join(', ')}): two registries on one bridge would lease the same addresses` };
  }
  return { usable: true, afterRepair: b.isolated === false };
}

/** Whether this pass should load the bridge's isolation rules again. */
export const isolationDue = (b: BridgeFact | undefined): boolean => b?.present === true && b.isolated === false && b.repairError === undefined;

/** The network a VM start goes on: decided by the planner, only leased by placement. */
export type VmNetwork =
  | { mode: 'slirp' }
  /** `ifRepairFails`: the bridge is usable once this pass loads its rules again; what to do if that fails. */
  | { mode: 'bridge'; ifRepairFails?: 'slirp' | 'refuse' }
  /** The spec asks for the bridge and it cannot be had: the start fails with `why`. */
  | { mode: 'refused'; why: string };

export function vmNetwork(spec: ComponentSpec, bridge: BridgeFact | undefined): VmNetwork {
  if (spec.network === 'slirp') return { mode: 'slirp' };
  const use = bridgeUse(bridge);
  if (!use.usable) return spec.network === 'bridge' ? { mode: 'refused', why: use.why } : { mode: 'slirp' };
  if (!use.afterRepair) return { mode: 'bridge' };
  return { mode: 'bridge', ifRepairFails: spec.network === 'bridge' ? 'refuse' : 'slirp' };
}

/** The network to place a VM on, once the pass knows whether its isolation repair failed (`repairError`). */
export function networkAfterRepair(n: VmNetwork, bridge: string, repairError: string | undefined): VmNetwork {
  if (n.mode !== 'bridge' || !n.ifRepairFails || repairError === undefined) return n;
  return n.ifRepairFails === 'slirp' ? { mode: 'slirp' } : { mode: 'refused', why: `the isolation rules of ${bridge} are not in place and cannot be loaded: ${repairError}` };
}

export interface NetworkDrift {
  reason: string;
  /** A replace would fix it; false when what the spec asks for cannot be had now. */
  fixable: boolean;
}

export function networkDrift(spec: ComponentSpec, current: Observed, bridge: BridgeFact | undefined): NetworkDrift | undefined {
  if (spec.runtime !== 'unikernel' || !bridge || bridge.present === undefined || (current.network !== 'slirp' && current.network !== 'bridge')) return undefined;
  if (current.network === 'slirp') {
    // A running VM moves only onto a bridge usable now, not one whose rules this pass is loading.
    const use = bridgeUse(bridge);
    const move = spec.network !== 'slirp' && use.usable && !use.afterRepair;
    return move ? { reason: `network ${spec.network}: bridge ${bridge.name} is there now, the VM runs on SLIRP`, fixable: true } : undefined;
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
  if ((bridge.otherAgents ?? []).length > 0) {
    // Not fixed by moving this VM: the other agent's leases are out of this registry's sight.
    return { reason: `shared bridge: ${bridge.name} also carries VMs of agent ${bridge.otherAgents!.join(', ')}, whose addresses may collide with this agent's; give each agent its own bridge`, fixable: false };
  }
  // When `ip` cannot tell who shares the bridge, a VM already on it is not moved for that: no guess replaces a VM.
  if (current.networkProblem) return { reason: `unreachable: ${current.networkProblem}`, fixable: true };
  return undefined;
}
