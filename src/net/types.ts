/**
 * The host's VM networking as the agent sees it: a bridge with its isolation rules, and one TAP
 * per bridged VM. `HostNet` is the port the agent and the QEMU runtime drive (src/net/host.ts is
 * the one real adapter, on `ip` and `nft`; unit tests use a fake). Every method is idempotent and
 * says what it does when it cannot tell: `undefined`, never a guess that reads as "absent".
 */

export interface BridgeSettings {
  bridge: string;
  /** e.g. 10.99.0.1 */
  gateway: string;
  prefix: number;
  table: string;
}

export interface RulesCheck {
  /** The tables hold exactly the isolation ruleset. */
  loaded: boolean;
  /** nft answered (installed, working): a reload can be tried. */
  nft: boolean;
  detail: string;
}

export interface NetStatus {
  bridge: { name: string; present: boolean; created_by_agent: boolean; address: string | null; up: boolean };
  rules: { loaded: boolean; detail: string };
  /** Agent id -> its TAPs on the bridge. More than one agent means their addresses may collide. */
  agents: Record<string, number>;
}

/** The TAPs of VMs: what a VM runtime needs of the host. An owner is `<agent id>:<workload>`. */
export interface HostTaps {
  /**
   * A TAP marked with its owner, enslaved to the bridge and up. All or nothing. A TAP of that name
   * with the same owner (an earlier launch) is made again; one with another mark is never touched:
   * throws, naming its mark.
   */
  tapUp(tap: string, bridge: string, owner: string): Promise<void>;
  /** Deletes the TAP if it carries this owner's mark. Already gone is not an error. */
  tapDown(tap: string, owner: string): Promise<void>;
  /** Every TAP on the host -> the bridge it is enslaved to (undefined: none); undefined when it cannot tell. */
  tapAttachments(): Promise<Map<string, string | undefined> | undefined>;
  /** TAPs made by any agent, owner -> TAP name. */
  agentTaps(): Promise<Map<string, string>>;
}

/** The bridge, its isolation rules and its TAPs. */
export interface HostNet extends HostTaps {
  /** The link exists and is a bridge: true or false; undefined when it cannot tell. */
  bridgePresence(name: string): Promise<boolean | undefined>;
  /** Are the isolation rules in place, exactly? Never throws: a failure is in the answer. */
  checkRules(s: BridgeSettings): Promise<RulesCheck>;
  /** Loads the rules again (one atomic transaction) when missing or changed: whether it had to. Throws when it cannot. */
  ensureRules(s: BridgeSettings): Promise<boolean>;
  /** Agent ids other than `agentId` with a TAP on `bridge`, sorted. Throws when it cannot tell. */
  otherAgentsOnBridge(bridge: string, agentId: string): Promise<string[]>;
  /** `agent net up`: the bridge (made if missing), its gateway address, the rules. All or nothing; what it did, line by line. */
  up(s: BridgeSettings): Promise<string[]>;
  /** `agent net down`: the rules, and the bridge only if the agent made it. What it did, line by line. */
  down(s: BridgeSettings): Promise<string[]>;
  /** `agent net status`: the bridge, the rules, whose VMs are on it. */
  status(s: BridgeSettings): Promise<NetStatus>;
}
