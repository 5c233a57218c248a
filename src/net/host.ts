/**
 * The host side of bridge networking, through `ip` and `nft` (runBounded, argument arrays). Every step
 * is idempotent (should-do, do, verify). What the agent creates it marks with the link alias
 * `mcp-agent`, so `net down` removes only that, never a bridge an operator made. `hostNet()` is
 * these steps as the `HostNet` port (src/net/types.ts) the agent and the QEMU runtime are given.
 */
import { z } from 'zod';
import { RuntimeError } from '../errors.js';
import { CommandFailedError, failureLine, runBounded, type CommandBound } from '../runtime/command.js';
import { isolationRuleset, removalRuleset, rulesetMatches } from './plan.js';
import type { BridgeSettings, HostNet, NetStatus, RulesCheck } from './types.js';
import { byCodeUnits } from '../identity.js';

export const AGENT_ALIAS = 'mcp-agent';

/** `ip` and `nft` answer in milliseconds; one that has not answered in 10 s is killed. */
const NET_TIMEOUT_MS = 10_000;
const netBound = (operation: string, read = false): CommandBound => ({ runtime: 'net', operation, timeoutMs: NET_TIMEOUT_MS, read });
/** A read that may fail: the command's result, with `reject: false`; a command that hangs still throws. */
const look = (tool: string, args: string[], operation: string) => runBounded(tool, args, netBound(operation, true), { reject: false });

const LinkSchema = z.array(z.object({ ifname: z.string(), ifalias: z.string().optional(), flags: z.array(z.string()).optional(), operstate: z.string().optional(), master: z.string().optional(), addr_info: z.array(z.object({ local: z.string(), prefixlen: z.number(), family: z.string(), label: z.string().optional() })).optional() }));
type Link = z.infer<typeof LinkSchema>[number];

async function run(tool: string, args: string[], op: string, input?: string): Promise<string> {
  try {
    return (await runBounded(tool, args, netBound(op), { input })).stdout;
  } catch (err) {
    if (err instanceof RuntimeError) throw err;
    const msg = !(err instanceof CommandFailedError) ? String(err) : err.code === 'ENOENT' ? `${tool} is not installed` : failureLine(err);
    throw new RuntimeError('net', op, undefined, msg, { cause: err });
  }
}

/** A link with its addresses; `ip -j addr` omits the alias, `ip -j link` has it. */
export async function link(name: string): Promise<Link | undefined> {
  try {
    const [addr, lnk] = await Promise.all([
      runBounded('ip', ['-j', 'addr', 'show', 'dev', name], netBound('link', true)),
      runBounded('ip', ['-j', 'link', 'show', 'dev', name], netBound('link', true)),
    ]);
    const a = LinkSchema.parse(JSON.parse(String(addr.stdout) || '[]'))[0];
    const l = LinkSchema.parse(JSON.parse(String(lnk.stdout) || '[]'))[0];
    return a ? { ...a, ifalias: l?.ifalias } : undefined;
  } catch {
    return undefined;
  }
}

/** `BRIDGE:mcp`, the label of an address the agent adds; none when it would pass 15 characters. */
export function addressLabel(bridge: string): string | undefined {
  const label = `${bridge}:mcp`;
  return label.length <= 15 ? label : undefined;
}

/** One `ip` call: the link exists and is a bridge (a dummy or TAP of that name is not). */
export async function bridgeExists(name: string): Promise<boolean> {
  return (await bridgePresence(name)) === true;
}

/** Like bridgeExists, but undefined when `ip` could not tell (not installed, failed otherwise). */
export async function bridgePresence(name: string): Promise<boolean | undefined> {
  const r = await look('ip', ['-j', 'link', 'show', 'dev', name, 'type', 'bridge'], 'bridge').catch(() => undefined);
  if (!r) return undefined; // `ip` did not answer within its bound
  if (r.exitCode === 0) return r.stdout.includes(`"ifname":"${name}"`);
  return /does not exist/.test(r.stderr) ? false : undefined;
}

/**
 * Creates (if missing) the bridge with the gateway address and loads the isolation rules. All or
 * nothing for what it creates: if a later step fails, a bridge (or gateway address) this call
 * added is removed again, so no bridge is left without its rules.
 */
export async function netUp(s: BridgeSettings): Promise<string[]> {
  const done: string[] = [];
  let l = await link(s.bridge);
  const created = !l;
  let addedAddress = false;
  try {
    if (!l) {
      await run('ip', ['link', 'add', 'name', s.bridge, 'type', 'bridge'], 'net up');
      await run('ip', ['link', 'set', 'dev', s.bridge, 'alias', AGENT_ALIAS], 'net up');
      done.push(`created bridge ${s.bridge}`);
      l = await link(s.bridge);
    }
    if (!l?.addr_info?.some((a) => a.family === 'inet' && a.local === s.gateway && a.prefixlen === s.prefix)) {
      // Labelled when the name leaves room, so `net down` can take back an address it added to a
      // bridge an operator made (and only that address).
      const label = addressLabel(s.bridge);
      await run('ip', ['addr', 'replace', `${s.gateway}/${s.prefix}`, 'dev', s.bridge, ...(label ? ['label', label] : [])], 'net up');
      addedAddress = true;
      done.push(`address ${s.gateway}/${s.prefix} on ${s.bridge}`);
    }
    // Only the steps that would change something: a re-run on a bridge in place is one `nft` call.
    if (!l?.flags?.includes('UP')) await run('ip', ['link', 'set', 'dev', s.bridge, 'up'], 'net up');
    // One nft transaction: a bad rule leaves the old tables untouched.
    await run('nft', ['-f', '-'], 'net up', isolationRuleset(s.bridge, s.gateway, s.table));
  } catch (err) {
    const undo = (args: string[]) => runBounded('ip', args, netBound('net up'), { reject: false }).catch(() => undefined);
    if (created) await undo(['link', 'del', 'dev', s.bridge]);
    else if (addedAddress) await undo(['addr', 'del', `${s.gateway}/${s.prefix}`, 'dev', s.bridge]);
    throw err;
  }
  done.push(`isolation rules loaded (tables inet ${s.table}, bridge ${s.table})`);
  return done;
}

/** Removes the rules, and the bridge only if the agent created it. */
export async function netDown(s: BridgeSettings): Promise<string[]> {
  const done: string[] = [];
  await run('nft', ['-f', '-'], 'net down', removalRuleset(s.table));
  done.push(`removed tables inet ${s.table}, bridge ${s.table}`);
  const l = await link(s.bridge);
  if (l && l.ifalias === AGENT_ALIAS) {
    await run('ip', ['link', 'del', 'dev', s.bridge], 'net down');
    done.push(`deleted bridge ${s.bridge}`);
  } else if (l) {
    const label = addressLabel(s.bridge);
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' || !label || a.label !== label) continue;
      await run('ip', ['addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', s.bridge], 'net down');
      done.push(`removed address ${a.local}/${a.prefixlen} the agent had added to ${s.bridge}`);
    }
    done.push(`left bridge ${s.bridge} in place: the agent did not create it`);
  }
  return done;
}

export async function netStatus(s: BridgeSettings): Promise<NetStatus> {
  const l = await link(s.bridge);
  const addr = l?.addr_info?.find((a) => a.family === 'inet');
  const [rules, owners] = await Promise.all([checkRules(s), l ? bridgeTapOwners(s.bridge) : new Map<string, number>()]);
  return {
    bridge: { name: s.bridge, present: !!l, created_by_agent: l?.ifalias === AGENT_ALIAS, address: addr ? `${addr.local}/${addr.prefixlen}` : null, up: l?.operstate !== 'DOWN' && !!l },
    rules: { loaded: rules.loaded, detail: rules.detail },
    agents: Object.fromEntries([...owners].sort(([a], [b]) => byCodeUnits(a, b))),
  };
}

/** Two `nft list table` calls: are the isolation rules in place, exactly? */
export async function checkRules(s: BridgeSettings): Promise<RulesCheck> {
  const list = (family: string) => look('nft', ['list', 'table', family, s.table], 'isolation rules');
  let inet, br;
  try {
    [inet, br] = await Promise.all([list('inet'), list('bridge')]);
  } catch (err) {
    return { loaded: false, nft: false, detail: (err as Error).message };
  }
  if (inet.code === 'ENOENT' || br.code === 'ENOENT') return { loaded: false, nft: false, detail: 'nft is not installed' };
  if (inet.exitCode !== 0 || br.exitCode !== 0) {
    const missing = /No such file or directory/.test(`${String(inet.stderr)}${String(br.stderr)}`);
    return missing ? { loaded: false, nft: true, detail: 'tables missing: run agent net up' } : { loaded: false, nft: false, detail: `nft list failed: ${String(inet.stderr || br.stderr).trim().split('\n').pop()}` };
  }
  const ok = rulesetMatches(`${String(inet.stdout)}\n${String(br.stdout)}`, s.bridge, s.gateway, s.table);
  return { loaded: ok, nft: true, detail: ok ? 'isolation rules in place' : 'tables present but the rules differ: run agent net up' };
}

/**
 * Makes sure the isolation rules are in place: checked, and loaded again (one atomic `nft -f`)
 * when missing or changed. Returns whether it had to load them; throws when it cannot.
 */
export async function ensureRules(s: BridgeSettings): Promise<boolean> {
  const c = await checkRules(s);
  if (c.loaded) return false;
  await run('nft', ['-f', '-'], 'isolation rules', isolationRuleset(s.bridge, s.gateway, s.table));
  return true;
}

/**
 * A TAP for one VM, marked with its owner, enslaved to the bridge and up: one `ip -batch` (one
 * process instead of four; this is on every VM start). All or nothing: a batch that fails part-way
 * leaves no TAP. A TAP of that name left by an earlier launch of the same VM (same owner mark) is
 * made again; one with any other mark is never touched, and the start fails saying whose it is.
 */
export async function tapUp(tap: string, bridge: string, owner: string): Promise<void> {
  const mark = `${AGENT_ALIAS}:${owner}`;
  const batch = [`tuntap add dev ${tap} mode tap`, `link set dev ${tap} alias ${mark}`, `link set dev ${tap} master ${bridge} up`].join('\n') + '\n';
  for (let attempt = 1; ; attempt++) {
    const r = await runBounded('ip', ['-batch', '-'], netBound('tap'), { input: batch, reject: false });
    if (r.exitCode === 0) return;
    const stderr = r.stderr.trim();
    if (/TUNSETIFF\): Device or resource busy|File exists/.test(stderr)) {
      // The name is taken: ours from an earlier launch, or someone else's.
      const existing = (await link(tap))?.ifalias;
      if (existing !== mark) throw new RuntimeError('net', 'tap', undefined, `${tap} exists and is not this VM's (its mark: ${existing ?? 'none'}); the agent leaves it alone`);
      if (attempt > 1) throw new RuntimeError('net', 'tap', undefined, `${tap} could not be made again`);
      await run('ip', ['link', 'del', 'dev', tap], 'tap');
      continue;
    }
    // Failed after `tuntap add` made the TAP (an argument error ends `ip` without saying which
    // line): a TAP with our mark is this half-made one. Remove it.
    await tapDown(tap, owner).catch(() => undefined);
    // `ip -batch` may end its stderr with "Command failed -:N"; the cause is on the line before.
    const msg = r.code === 'ENOENT' ? 'ip is not installed' : stderr.replace(/\n?Command failed -:\d+$/, '').split('\n').pop() || r.shortMessage;
    throw new RuntimeError('net', 'tap', undefined, `${tap} on ${bridge}: ${msg}`);
  }
}

/** Deletes the TAP if it carries this owner's mark; a TAP of that name marked otherwise stays. */
export async function tapDown(tap: string, owner: string): Promise<void> {
  const l = await link(tap);
  if (l && l.ifalias === `${AGENT_ALIAS}:${owner}`) await run('ip', ['link', 'del', 'dev', tap], 'tap');
}

/**
 * Every TAP on this host, by name, with the bridge it is enslaved to (undefined: none). Undefined
 * when `ip` cannot tell: callers must then assume nothing (an empty map would read as "all gone").
 */
export async function tapAttachments(): Promise<Map<string, string | undefined> | undefined> {
  const out = await look('ip', ['-j', 'link', 'show', 'type', 'tun'], 'tap').catch(() => undefined);
  if (!out || out.exitCode !== 0) return undefined;
  try {
    const links = LinkSchema.safeParse(JSON.parse(String(out.stdout) || '[]'));
    return links.success ? new Map(links.data.map((l) => [l.ifname, l.master])) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The agents with VMs on `bridge`: agent id -> how many of its TAPs are ports of the bridge.
 * Only the bridge's ports are listed, so the cost does not grow with links elsewhere on the host.
 */
export async function bridgeTapOwners(bridge: string): Promise<Map<string, number>> {
  const out = await look('ip', ['-j', 'link', 'show', 'master', bridge], 'tap');
  if (out.exitCode !== 0) throw new RuntimeError('net', 'tap', undefined, `cannot list the ports of ${bridge}: ${String(out.stderr).trim()}`);
  const links = LinkSchema.safeParse(JSON.parse(String(out.stdout) || '[]'));
  if (!links.success) throw new RuntimeError('net', 'tap', undefined, `cannot read the port list of ${bridge} from \`ip -j link\``);
  const owners = new Map<string, number>();
  for (const l of links.data) {
    if (!l.ifalias?.startsWith(`${AGENT_ALIAS}:`)) continue;
    const owner = l.ifalias.slice(AGENT_ALIAS.length + 1).split(':')[0];
    if (owner) owners.set(owner, (owners.get(owner) ?? 0) + 1);
  }
  return owners;
}

/**
 * Agent ids other than `agentId` with a TAP enslaved to `bridge`. Each registry leases addresses
 * on its own, so a second agent on the same bridge would hand out the same IPs: placement keeps
 * off a bridge another agent uses.
 */
export async function otherAgentsOnBridge(bridge: string, agentId: string): Promise<string[]> {
  return [...(await bridgeTapOwners(bridge)).keys()].filter((id) => id !== agentId).sort();
}

/** TAPs made by an agent (alias `mcp-agent:<owner>`, owner = `<agent id>:<workload>`), by owner. */
export async function agentTaps(): Promise<Map<string, string>> {
  const out = await look('ip', ['-j', 'link', 'show', 'type', 'tun'], 'tap');
  const links = LinkSchema.safeParse(JSON.parse(String(out.stdout) || '[]'));
  const taps = new Map<string, string>();
  if (!links.success) return taps;
  for (const l of links.data) if (l.ifalias?.startsWith(`${AGENT_ALIAS}:`)) taps.set(l.ifalias.slice(AGENT_ALIAS.length + 1), l.ifname);
  return taps;
}

/** The real host: `ip` and `nft` on this machine's network namespace. */
export function hostNet(): HostNet {
  return { bridgePresence, checkRules, ensureRules, otherAgentsOnBridge, tapUp, tapDown, tapAttachments, agentTaps, up: netUp, down: netDown, status: netStatus };
}
