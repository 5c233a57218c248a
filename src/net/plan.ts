/**
 * Bridge networking arithmetic, pure: the subnet's usable addresses, IP choice, TAP names, and the
 * nftables ruleset that isolates VMs. The ruleset is the one HOST-FACTS measured inside a test
 * namespace: VM -> gateway allowed; VM -> VM dropped (bridge family, IP and ARP); forwarding from
 * or to the bridge dropped (no NAT, nothing off the bridge); host -> VM allowed.
 */
import { createHash } from 'node:crypto';

export interface Subnet {
  /** Network address as a 32-bit number. */
  network: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  // No leading zeros: some tools read 010 as octal, so such an address means different things.
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not a 32-bit address: ${n}`);
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export function parseSubnet(cidr: string): Subnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new Error(`prefix /${prefix} out of range (8-30)`);
  const size = 2 ** (32 - prefix);
  const ip = ipToInt(m[1]!);
  return { network: ip - (ip % size), prefix };
}

/** The gateway is the first host address; VMs get the rest, broadcast excluded. */
export function gatewayOf(s: Subnet): string {
  return intToIp(s.network + 1);
}

export function vmAddresses(s: Subnet): { first: number; last: number } {
  const size = 2 ** (32 - s.prefix);
  return { first: s.network + 2, last: s.network + size - 2 };
}

/** The lowest address of the subnet not in `taken`, or undefined when the subnet is full. */
export function pickIp(s: Subnet, taken: Set<string>): string | undefined {
  const { first, last } = vmAddresses(s);
  for (let n = first; n <= last; n++) {
    const ip = intToIp(n);
    if (!taken.has(ip)) return ip;
  }
  return undefined;
}

/** `tap-` + 11 hex digits of sha256(name): 15 characters, the kernel's limit; matches `tap-*`. */
export function tapName(workload: string): string {
  return `tap-${createHash('sha256').update(workload).digest('hex').slice(0, 11)}`;
}

/**
 * One nft transaction: the `table X` / `delete table X` head makes loading idempotent (nft 1.0.6
 * has no `destroy`, and a bare delete fails when the table is absent).
 */
export function isolationRuleset(bridge: string, gateway: string, table: string): string {
  return `table inet ${table}
delete table inet ${table}
table bridge ${table}
delete table bridge ${table}
table inet ${table} {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "${bridge}" ct state established,related accept
    iifname "${bridge}" ip daddr ${gateway} accept
    iifname "${bridge}" counter drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${bridge}" counter drop
    oifname "${bridge}" counter drop
  }
}
table bridge ${table} {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "tap-*" oifname "tap-*" counter drop
  }
}
`;
}

/**
 * Whether what `nft list table inet T` + `nft list table bridge T` print is exactly the isolation
 * ruleset: the same tables, chains and rules, nothing missing and nothing added. Counters and
 * blank lines are ignored (nft prints `counter packets N bytes M` where the ruleset says `counter`).
 */
export function rulesetMatches(listing: string, bridge: string, gateway: string, table: string): boolean {
  const norm = (text: string): string[] =>
    text
      .split('\n')
      .map((l) => l.trim().replace(/counter packets \d+ bytes \d+/, 'counter'))
      .filter(Boolean);
  const expected = norm(isolationRuleset(bridge, gateway, table)).slice(4); // without the idempotent head
  const got = norm(listing);
  return got.length === expected.length && got.every((l, i) => l === expected[i]);
}

export function removalRuleset(table: string): string {
  return `table inet ${table}\ndelete table inet ${table}\ntable bridge ${table}\ndelete table bridge ${table}\n`;
}
