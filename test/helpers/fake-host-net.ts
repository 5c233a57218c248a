// A HostNet in memory, for unit tests of the agent's logic only (end-to-end tests use the real
// host through src/net/host.ts). It keeps the port's contracts: idempotent steps, an owner mark
// on each TAP, `undefined` for "cannot tell". A test sets what the host looks like, or makes a
// step fail, and reads `calls` to see what was asked of it.
import { AGENT_ALIAS } from '../../src/net/host.js';
import type { BridgeSettings, HostNet, NetStatus, RulesCheck } from '../../src/net/types.js';

export interface FakeTap {
  bridge: string | undefined;
  owner: string;
}

export class FakeHostNet implements HostNet {
  /** Bridges on the host: name -> whether the agent made it, and whether its rules are loaded. */
  readonly bridges = new Map<string, { byAgent: boolean; rules: boolean }>();
  readonly taps = new Map<string, FakeTap>();
  /** Every call, as `method arg…`, in order. */
  readonly calls: string[] = [];
  /** `ip` cannot tell: presence and TAP listings answer undefined, sharing checks throw. */
  ipUnknown = false;
  /** When set, loading the rules fails with this message. */
  rulesFail: string | undefined;

  constructor(opts: { bridge?: string; rules?: boolean } = {}) {
    if (opts.bridge) this.bridges.set(opts.bridge, { byAgent: true, rules: opts.rules ?? true });
  }

  private note(...words: unknown[]): void {
    this.calls.push(words.join(' '));
  }

  async bridgePresence(name: string): Promise<boolean | undefined> {
    this.note('bridgePresence', name);
    return this.ipUnknown ? undefined : this.bridges.has(name);
  }

  async checkRules(s: BridgeSettings): Promise<RulesCheck> {
    this.note('checkRules', s.bridge);
    const loaded = this.bridges.get(s.bridge)?.rules ?? false;
    return { loaded, nft: true, detail: loaded ? 'isolation rules in place' : 'tables missing: run agent net up' };
  }

  async ensureRules(s: BridgeSettings): Promise<boolean> {
    this.note('ensureRules', s.bridge);
    const b = this.bridges.get(s.bridge);
    if (b?.rules) return false;
    if (this.rulesFail) throw new Error(this.rulesFail);
    if (b) b.rules = true;
    return true;
  }

  async otherAgentsOnBridge(bridge: string, agentId: string): Promise<string[]> {
    this.note('otherAgentsOnBridge', bridge, agentId);
    if (this.ipUnknown) throw new Error(`cannot list the ports of ${bridge}`);
    const ids = [...this.taps.values()].filter((t) => t.bridge === bridge).map((t) => t.owner.split(':')[0]!);
    return [...new Set(ids)].filter((id) => id !== agentId).sort();
  }

  async tapUp(tap: string, bridge: string, owner: string): Promise<void> {
    this.note('tapUp', tap, bridge, owner);
    const t = this.taps.get(tap);
    if (t && t.owner !== owner) throw new Error(`${tap} exists and is not this VM's (its mark: ${AGENT_ALIAS}:${t.owner}); the agent leaves it alone`);
    if (!this.bridges.has(bridge)) throw new Error(`${tap} on ${bridge}: Cannot find device "${bridge}"`);
    this.taps.set(tap, { bridge, owner });
  }

  async tapDown(tap: string, owner: string): Promise<void> {
    this.note('tapDown', tap, owner);
    if (this.taps.get(tap)?.owner === owner) this.taps.delete(tap);
  }

  async tapAttachments(): Promise<Map<string, string | undefined> | undefined> {
    this.note('tapAttachments');
    return this.ipUnknown ? undefined : new Map([...this.taps].map(([name, t]) => [name, t.bridge]));
  }

  async agentTaps(): Promise<Map<string, string>> {
    this.note('agentTaps');
    return new Map([...this.taps].map(([name, t]) => [t.owner, name]));
  }

  async up(s: BridgeSettings): Promise<string[]> {
    this.note('up', s.bridge);
    const done: string[] = [];
    if (!this.bridges.has(s.bridge)) {
      this.bridges.set(s.bridge, { byAgent: true, rules: false });
      done.push(`created bridge ${s.bridge}`);
    }
    this.bridges.get(s.bridge)!.rules = true;
    return [...done, `isolation rules loaded (tables inet ${s.table}, bridge ${s.table})`];
  }

  async down(s: BridgeSettings): Promise<string[]> {
    this.note('down', s.bridge);
    const b = this.bridges.get(s.bridge);
    if (b) b.rules = false;
    if (b?.byAgent) this.bridges.delete(s.bridge);
    for (const t of this.taps.values()) if (t.bridge === s.bridge && !this.bridges.has(s.bridge)) t.bridge = undefined;
    return [`removed tables inet ${s.table}, bridge ${s.table}`, ...(b?.byAgent ? [`deleted bridge ${s.bridge}`] : [])];
  }

  async status(s: BridgeSettings): Promise<NetStatus> {
    this.note('status', s.bridge);
    const b = this.bridges.get(s.bridge);
    const agents: Record<string, number> = {};
    for (const t of this.taps.values()) if (t.bridge === s.bridge) agents[t.owner.split(':')[0]!] = (agents[t.owner.split(':')[0]!] ?? 0) + 1;
    return {
      bridge: { name: s.bridge, present: !!b, created_by_agent: b?.byAgent ?? false, address: b ? `${s.gateway}/${s.prefix}` : null, up: !!b },
      rules: { loaded: b?.rules ?? false, detail: b?.rules ? 'isolation rules in place' : 'tables missing: run agent net up' },
      agents,
    };
  }
}
