// Bridge networking end to end, entirely inside network namespaces this test creates (the agent
// itself runs in them with `ip netns exec`): no 10.99.x traffic ever leaves them. Real bridge,
// TAPs, nftables, QEMU (TCG) and SSH.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import Database from 'better-sqlite3';
import { macFor } from '../../src/identity.js';
import { tapName } from '../../src/net/plan.js';
import { TestNode, row, waitFor } from '../helpers/agent.js';

const tag = randomBytes(3).toString('hex');
const NS = `agt-${tag}`; // the node: bridge, TAPs, VMs, agent
const FAR = `agtfar-${tag}`; // a second namespace, wired to the first by a veth pair
const ns = (name: string, ...cmd: string[]) => execa('ip', ['netns', 'exec', name, ...cmd], { reject: false });

const KERNEL = 'kernel = "vmlinux"\ninitrd = "initrd.gz"';
const vmService = (name: string, comps: Record<string, string>): string =>
  `name = "${name}"\nruntime = "unikernel"\n` + Object.entries(comps).map(([c, b]) => `\n[[components]]\nname = "${c}"\nmemory = 128\nnetwork = "bridge"\n${b}\n`).join('');

function leases(node: TestNode): Array<{ kind: string; value: string; component: string }> {
  const db = new Database(node.db, { readonly: true });
  try {
    return db.prepare('SELECT kind, value, component FROM leases ORDER BY value').all() as Array<{ kind: string; value: string; component: string }>;
  } finally {
    db.close();
  }
}

async function links(): Promise<string[]> {
  return (await ns(NS, 'ip', '-br', 'link')).stdout.split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

/** Every process below `pid` (children, their children...), with its command line. */
function descendantsOf(pid: number): Array<{ pid: number; cmd: string }> {
  const all = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return [{ pid: Number(p), ppid, cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') }];
    } catch {
      return [];
    }
  });
  const out: Array<{ pid: number; cmd: string }> = [];
  const walk = (parent: number): void => {
    for (const p of all.filter((x) => x.ppid === parent)) {
      out.push({ pid: p.pid, cmd: p.cmd });
      walk(p.pid);
    }
  };
  walk(pid);
  return out;
}

/** Runs `sh -c script` in a VM through `agent exec`; returns stdout. */
async function inVm(node: TestNode, target: string, script: string): Promise<string> {
  const r = await node.cli(['exec', target, '--', 'sh', '-c', script]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout;
}
const PING = (ip: string) => `ping -c1 -W2 ${ip} >/dev/null 2>&1 && echo reach || echo blocked`;

describe('isolated bridge networking (inside test namespaces)', () => {
  const node = new TestNode({ AGENT_ACCEL: 'tcg' });
  const svc = TestNode.serviceName();

  before(async () => {
    node.useGuestImages();
    node.netns = NS;
    for (const n of [NS, FAR]) {
      await execa('ip', ['netns', 'add', n]);
      await ns(n, 'ip', 'link', 'set', 'lo', 'up');
    }
    // NS <-> FAR by a veth pair; NS routes (forwarding on), FAR knows the way back to the VMs.
    // Without the agent's rules a VM could reach FAR: the test proves that first, then the block.
    await ns(NS, 'ip', 'link', 'add', 'vnear', 'type', 'veth', 'peer', 'name', 'vfar', 'netns', FAR);
    await ns(NS, 'ip', 'addr', 'add', '192.168.77.1/24', 'dev', 'vnear');
    await ns(NS, 'ip', 'link', 'set', 'vnear', 'up');
    await ns(FAR, 'ip', 'addr', 'add', '192.168.77.2/24', 'dev', 'vfar');
    await ns(FAR, 'ip', 'link', 'set', 'vfar', 'up');
    await ns(FAR, 'ip', 'route', 'add', '10.99.0.0/24', 'via', '192.168.77.1');
    await ns(NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  });

  after(async () => {
    await node.cleanup(); // kills this node's QEMUs, removes its dir
    for (const n of [NS, FAR]) await execa('ip', ['netns', 'del', n], { reject: false });
  });

  it('net up creates the bridge and the rules, idempotently; status says so', async () => {
    assert.match(await node.ok(['net', 'up']), /created bridge mcp-br0/);
    assert.doesNotMatch(await node.ok(['net', 'up']), /created bridge/);
    const st = JSON.parse(await node.ok(['net', 'status', '--json'])) as { bridge: { present: boolean; address: string; created_by_agent: boolean }; rules: { loaded: boolean } };
    assert.deepEqual([st.bridge.present, st.bridge.address, st.bridge.created_by_agent, st.rules.loaded], [true, '10.99.0.1/24', true, true]);
    assert.match((await ns(NS, 'nft', 'list', 'tables')).stdout, /table inet mcp[\s\S]*table bridge mcp/);
  });

  it('two VMs get their IPs, MACs and TAPs; ssh from the host; a VM reaches only the gateway', async () => {
    await node.apply(vmService(svc, { one: KERNEL, two: 'image = "guest.img"' }));
    await node.ok(['run', '--once']);
    const st = await node.status();
    const one = row(st, svc, 'one');
    const two = row(st, svc, 'two');
    assert.deepEqual([one.drift, one.address, one.network], ['in-sync', '10.99.0.2', 'bridge']);
    assert.deepEqual([two.drift, two.address, two.network], ['in-sync', '10.99.0.3', 'bridge']);
    assert.equal((await inVm(node, `${svc}/one`, 'cat /sys/class/net/eth0/address')).trim(), macFor(`${svc}-one`));
    assert.equal((await inVm(node, `${svc}/two`, 'cat /sys/class/net/eth0/address')).trim(), macFor(`${svc}-two`));
    assert.match(await inVm(node, `${svc}/two`, 'ip -4 addr show eth0'), /10\.99\.0\.3\/24/, 'the disk-image guest took its IP from SMBIOS');
    const l = await links();
    assert.ok(l.includes(tapName(`${svc}-one`)) && l.includes(tapName(`${svc}-two`)), l.join(' '));

    // the namespace's host reaches each VM with plain OpenSSH, host key pinned
    const kh = join(node.dir, 'known_hosts');
    const hostKey = readFileSync(join(node.dir, 'images/host_key.pub'), 'utf8').trim();
    writeFileSync(kh, `10.99.0.2 ${hostKey}\n10.99.0.3 ${hostKey}\n`);
    for (const ip of ['10.99.0.2', '10.99.0.3']) {
      const r = await ns(NS, 'ssh', '-i', join(node.dir, 'images/id_ed25519'), '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', `root@${ip}`, 'hostname');
      assert.equal(r.exitCode, 0, r.stderr);
    }

    // with the rules: gateway yes, the other VM no, the far namespace no
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.1'))).trim(), 'reach');
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'blocked');
    assert.equal((await inVm(node, `${svc}/one`, `ip route add default via 10.99.0.1 2>/dev/null; ${PING('192.168.77.2')}`)).trim(), 'blocked');

    // the proof that those blocks are the rules' doing: without the tables, both get through
    await ns(NS, 'nft', 'delete', 'table', 'bridge', 'mcp');
    await ns(NS, 'nft', 'delete', 'table', 'inet', 'mcp');
    const ns2 = JSON.parse(await node.ok(['net', 'status', '--json'])) as { rules: { loaded: boolean } };
    assert.equal(ns2.rules.loaded, false);
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'reach');
    assert.equal((await inVm(node, `${svc}/one`, PING('192.168.77.2'))).trim(), 'reach');
    await node.ok(['net', 'up']);
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'blocked');
    assert.equal((await inVm(node, `${svc}/one`, PING('192.168.77.2'))).trim(), 'blocked');
  });

  it('the same IP after a restart; a crash-left TAP and lease are collected', async () => {
    const pid = node.qemuPid(`${svc}-one`)!;
    process.kill(pid, 'SIGKILL');
    await node.ok(['run', '--once']);
    const one = row(await node.status(), svc, 'one');
    assert.deepEqual([one.drift, one.address, one.restarts], ['in-sync', '10.99.0.2', 1]);
    // what an agent killed mid-start could leave: a TAP with its mark and no VM, a lease with no VM
    const orphanTap = tapName(`${svc}-ghost`);
    await ns(NS, 'ip', 'tuntap', 'add', 'dev', orphanTap, 'mode', 'tap');
    await ns(NS, 'ip', 'link', 'set', 'dev', orphanTap, 'alias', `mcp-agent:${node.agentId()}:${svc}-ghost`);
    const db = new Database(node.db);
    db.prepare("INSERT INTO leases (kind, value, service, component, purpose) VALUES ('ip', '10.99.0.77', ?, 'ghost', 'bridge')").run(svc);
    db.close();
    // ... and a running VM whose lease row was lost
    const db2 = new Database(node.db);
    db2.prepare("DELETE FROM leases WHERE value = '10.99.0.3'").run();
    db2.close();
    await node.ok(['run', '--once']);
    assert.ok(!(await links()).includes(orphanTap), 'orphan TAP removed');
    assert.deepEqual(leases(node).map((l) => l.value), ['10.99.0.2', '10.99.0.3'], 'orphan lease released, the running VM\'s lease taken back');
    assert.equal(leases(node).find((l) => l.value === '10.99.0.3')?.component, 'two');
  });

  it('a second agent keeps off a bridge the first one uses (its leases would collide); the first reports a bridge shared with it', async (t) => {
    const other = new TestNode({ AGENT_ACCEL: 'tcg' });
    other.netns = NS;
    t.after(() => other.cleanup());
    other.useGuestImages();
    const svc2 = TestNode.serviceName();
    await other.ok(['net', 'up']);
    const comp = (name: string, network: string) => `\n[[components]]\nname = "${name}"\nmemory = 128\nnetwork = "${network}"\n${KERNEL}\n`;
    await other.apply(`name = "${svc2}"\nruntime = "unikernel"\n${comp('a', 'auto')}${comp('b', 'bridge')}`);
    const r = await other.cli(['run', '--once']);
    assert.equal(r.exitCode, 1, 'the bridge-only component failed');
    const st = await other.status();
    const a = row(st, svc2, 'a');
    const b = row(st, svc2, 'b');
    assert.deepEqual([a.drift, a.network], ['in-sync', 'slirp'], JSON.stringify(a));
    assert.equal(b.drift, 'missing');
    assert.match(b.last_event?.message ?? '', new RegExp(`mcp-br0 carries VMs of another agent \\(${node.agentId()}\\)`));
    assert.ok(!(await links()).some((l) => l === tapName(`${svc2}-a`) || l === tapName(`${svc2}-b`)), 'no TAP of the second agent');
    assert.deepEqual(leases(other).filter((l) => l.kind === 'ip'), [], 'no IP leased by the second agent');
    for (const c of ['one', 'two']) assert.equal(row(await node.status(), svc, c).drift, 'in-sync', 'the second agent has nothing on the bridge');

    // the first agent, once a TAP of another agent is on its bridge: drift network, no restart
    const pids = [node.qemuPid(`${svc}-one`), node.qemuPid(`${svc}-two`)];
    const foreign = `mcpx${tag}`;
    await ns(NS, 'ip', 'tuntap', 'add', 'dev', foreign, 'mode', 'tap');
    try {
      await ns(NS, 'ip', 'link', 'set', 'dev', foreign, 'alias', 'mcp-agent:0123456789abcdef:x-y');
      await ns(NS, 'ip', 'link', 'set', 'dev', foreign, 'master', 'mcp-br0', 'up');
      const one = row(await node.status(), svc, 'one');
      assert.equal(one.drift, 'network');
      assert.match(one.reason, /shared bridge: mcp-br0 also carries VMs of agent 0123456789abcdef/);
      assert.equal(one.next_action, null);
      await node.ok(['run', '--once']);
      assert.deepEqual([node.qemuPid(`${svc}-one`), node.qemuPid(`${svc}-two`)], pids, 'no VM restarted');
      // net status names both agents and exits 1
      const shared = JSON.parse(await node.ok(['net', 'status', '--json'])) as { agents: Record<string, number> };
      assert.deepEqual(shared.agents, Object.fromEntries([[node.agentId(), 2], ['0123456789abcdef', 1]].sort(([a], [b]) => String(a).localeCompare(String(b)))));
      const text = await node.cli(['net', 'status']);
      assert.equal(text.exitCode, 1);
      assert.match(text.stdout, /VMs: +.*1 of agent 0123456789abcdef.*shared by several agents/);
    } finally {
      await ns(NS, 'ip', 'link', 'del', 'dev', foreign);
    }
    assert.equal(row(await node.status(), svc, 'one').drift, 'in-sync');
    const alone = await node.cli(['net', 'status']);
    assert.equal(alone.exitCode, 0, alone.stdout);
    assert.match(alone.stdout, new RegExp(`VMs: +2 of agent ${node.agentId()}$`));
  });

  it('a host firewall reload that flushes the rules: status says the VMs are not isolated, the next pass loads the rules again', async () => {
    await ns(NS, 'nft', 'flush', 'ruleset'); // what `systemctl restart nftables` does with a stock nftables.conf
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'reach', 'without the rules the VMs reach each other');
    const st = await node.status();
    for (const c of ['one', 'two']) {
      assert.equal(row(st, svc, c).drift, 'network', c);
      assert.match(row(st, svc, c).reason, /not isolated: the rules of bridge mcp-br0 are not in place \(tables missing/, c);
      assert.equal(row(st, svc, c).next_action, null, 'the VMs are not restarted for it');
    }
    const pids = [node.qemuPid(`${svc}-one`), node.qemuPid(`${svc}-two`)];
    await node.ok(['run', '--once']);
    const after = await node.status();
    assert.deepEqual(after.summary, { 'in-sync': 2 });
    assert.deepEqual([node.qemuPid(`${svc}-one`), node.qemuPid(`${svc}-two`)], pids, 'same QEMUs');
    const events = JSON.parse(await node.ok(['events', '--json'])) as Array<{ action: string; outcome: string; workload: string }>;
    assert.ok(events.some((e) => e.action === 'isolate' && e.outcome === 'ok' && e.workload === 'mcp-br0'), JSON.stringify(events.slice(0, 3)));
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'blocked');
    const net = JSON.parse(await node.ok(['net', 'status', '--json'])) as { rules: { loaded: boolean } };
    assert.equal(net.rules.loaded, true);
    // a rule removed by hand is noticed too (the tables must hold exactly the ruleset)
    const handle = /oifname "mcp-br0" .*# handle (\d+)/.exec((await ns(NS, 'nft', '-a', 'list', 'chain', 'inet', 'mcp', 'forward')).stdout)?.[1];
    assert.ok(handle, 'found the rule to delete');
    await ns(NS, 'nft', 'delete', 'rule', 'inet', 'mcp', 'forward', 'handle', handle);
    assert.match(row(await node.status(), svc, 'one').reason, /the rules differ/);
    await node.ok(['run', '--once']);
    assert.deepEqual((await node.status()).summary, { 'in-sync': 2 });
  });

  it('a running agent repairs a flush at once (nft monitor wakes it, not the resync), and SIGTERM ends its monitors', async () => {
    const agent = node.startAgent({ AGENT_RESYNC: '0 0 0 1 1 *' }); // no resync during the test
    await waitFor('the agent to pass', async () => (await node.status()).agent.running);
    const monitors = await waitFor('its monitors', async () => {
      const d = descendantsOf(agent.pid!);
      return d.some((m) => m.cmd === 'nft monitor') && d.some((m) => m.cmd === 'ip -o monitor link') ? d : undefined;
    });
    const reloads = async () => (JSON.parse(await node.ok(['events', '-n', '1000', '--json'])) as Array<{ action: string; outcome: string }>).filter((e) => e.action === 'isolate' && e.outcome === 'ok').length;
    const before = await reloads();
    const t0 = Date.now();
    assert.equal((await ns(NS, 'nft', 'flush', 'ruleset')).exitCode, 0);
    await waitFor('the agent to reload the rules', async () => (await reloads()) > before, 20_000, 100);
    await waitFor('the rules to be back', async () => (JSON.parse(await node.ok(['net', 'status', '--json'])) as { rules: { loaded: boolean } }).rules.loaded, 20_000, 100);
    console.log(`# flush repaired by the running agent in ${Date.now() - t0} ms`);
    assert.equal((await inVm(node, `${svc}/one`, PING('10.99.0.3'))).trim(), 'blocked');
    process.kill(agent.pid!, 'SIGTERM');
    assert.equal((await agent).exitCode, 0);
    await waitFor('its monitors to end', async () => monitors.every((m) => !existsSync(`/proc/${m.pid}`)), 10_000, 100);
  });

  it('delete frees the TAPs and leases; the IP is reused; net down removes bridge and tables', async () => {
    await node.ok(['delete', svc]);
    await node.ok(['run', '--once']);
    const l = await links();
    assert.ok(!l.some((x) => x.startsWith('tap-')), l.join(' '));
    assert.deepEqual(leases(node), []);
    assert.deepEqual(node.qemuProcesses(), []);
    const again = TestNode.serviceName();
    await node.apply(vmService(again, { z: KERNEL }));
    await node.ok(['run', '--once']);
    assert.equal(row(await node.status(), again, 'z').address, '10.99.0.2', 'the released address is handed out again');
    await node.ok(['delete', again]);
    await node.ok(['run', '--once']);
    assert.match(await node.ok(['net', 'down']), /deleted bridge mcp-br0/);
    assert.ok(!(await links()).includes('mcp-br0'));
    assert.equal((await ns(NS, 'nft', 'list', 'tables')).stdout.trim(), '');
  });

  it('exhausting the subnet is an error for the component that did not fit, not for the others', async () => {
    // a /30 leaves one VM address (.2) beside the gateway (.1)
    const cfg = join(node.dir, 'small.toml');
    writeFileSync(cfg, `db = "agent.db"\n[net]\nsubnet = "10.99.0.0/30"\n`);
    const env = { AGENT_CONFIG: cfg };
    await node.ok(['net', 'up'], { env });
    const small = TestNode.serviceName();
    await node.apply(vmService(small, { a: KERNEL, b: KERNEL }));
    const r = await node.cli(['run', '--once'], { env });
    assert.equal(r.exitCode, 1);
    const st = JSON.parse(await node.ok(['status', '--json'], { env })) as Awaited<ReturnType<TestNode['status']>>;
    const [a, b] = [row(st, small, 'a'), row(st, small, 'b')];
    const fitted = a.drift === 'in-sync' ? a : b;
    const left = fitted === a ? b : a;
    assert.equal(fitted.address, '10.99.0.2');
    assert.equal(left.drift, 'missing');
    assert.match(left.last_event?.message ?? '', /no free address left in 10\.99\.0\.0\/30 for this component/);
    await node.ok(['delete', small]);
    await node.ok(['run', '--once'], { env });
    await node.ok(['net', 'down'], { env });
  });
  it('network auto follows the bridge: SLIRP without it, moved by net up, back by net down; TAPs of a bridge made again are repaired', async () => {
    const mover = TestNode.serviceName();
    const manifest = (pinned: boolean): string =>
      `name = "${mover}"\nruntime = "unikernel"\n\n[[components]]\nname = "auto"\nmemory = 128\nnetwork = "auto"\n${KERNEL}\n` +
      (pinned ? `\n[[components]]\nname = "pinned"\nmemory = 128\nnetwork = "bridge"\n${KERNEL}\n` : '');
    const reachable = async (c: string): Promise<void> => assert.equal((await inVm(node, `${mover}/${c}`, 'echo up')).trim(), 'up');
    assert.ok(!(await links()).includes('mcp-br0'), 'the test starts without the bridge');
    await node.apply(manifest(false));
    await node.ok(['run', '--once']);
    let auto = row(await node.status(), mover, 'auto');
    assert.deepEqual([auto.drift, auto.network], ['in-sync', 'slirp']);
    assert.match(auto.address ?? '', /^127\.0\.0\.1:\d+$/);
    assert.match(await node.ok(['plan']), /nothing to do/);

    // the bridge appears: the VM is on the wrong network now, and is moved
    await node.ok(['net', 'up']);
    auto = row(await node.status(), mover, 'auto');
    assert.equal(auto.drift, 'network');
    assert.match(auto.reason, /network auto: bridge mcp-br0 is there now, the VM runs on SLIRP/);
    await node.ok(['run', '--once']);
    auto = row(await node.status(), mover, 'auto');
    assert.deepEqual([auto.drift, auto.network, auto.address], ['in-sync', 'bridge', '10.99.0.2']);
    assert.deepEqual(leases(node).filter((l) => l.kind !== 'ip'), [], 'its SLIRP port lease was given back');
    await reachable('auto');

    // a VM pinned to the bridge beside it; then the bridge is deleted and made again behind the
    // agent's back: the TAPs are on no bridge, both VMs are cut off, and both are repaired
    await node.apply(manifest(true));
    await node.ok(['run', '--once']);
    assert.equal(row(await node.status(), mover, 'pinned').address, '10.99.0.3');
    await ns(NS, 'ip', 'link', 'del', 'mcp-br0');
    await node.ok(['net', 'up']);
    let st = await node.status();
    for (const c of ['auto', 'pinned']) {
      assert.equal(row(st, mover, c).drift, 'network', c);
      assert.match(row(st, mover, c).reason, /unreachable: its TAP tap-\w+ is on no bridge \(was mcp-br0\)/, c);
    }
    await node.ok(['run', '--once']);
    st = await node.status();
    assert.deepEqual(['auto', 'pinned'].map((c) => [row(st, mover, c).drift, row(st, mover, c).address]), [['in-sync', '10.99.0.2'], ['in-sync', '10.99.0.3']]);
    await reachable('auto');
    await reachable('pinned');

    // the bridge goes: auto moves back to SLIRP; pinned cannot move, and says so
    await node.ok(['net', 'down']);
    st = await node.status();
    assert.match(row(st, mover, 'auto').reason, /bridge mcp-br0 is gone, the VM's TAP leads nowhere/);
    assert.equal(row(st, mover, 'pinned').drift, 'network');
    assert.match(row(st, mover, 'pinned').reason, /cut off \(agent net up brings the bridge back\)/);
    assert.equal(row(st, mover, 'pinned').next_action, null);
    await node.ok(['run', '--once']);
    auto = row(await node.status(), mover, 'auto');
    assert.deepEqual([auto.drift, auto.network], ['in-sync', 'slirp']);
    await reachable('auto');
    assert.deepEqual(leases(node).filter((l) => l.component === 'auto').map((l) => l.kind), ['host_port'], 'its IP lease was given back');

    await node.ok(['delete', mover]);
    await node.ok(['run', '--once']);
    assert.deepEqual(node.qemuProcesses(), []);
  });
});
