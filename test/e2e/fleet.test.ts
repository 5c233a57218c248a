// The master's side against real nodes: network namespaces with a real OpenSSH sshd each, the
// master in its own namespace (see test/helpers/fleet.ts). Nothing here leaves those namespaces.
import { strict as assert } from 'node:assert';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { BIN, IMAGE, TestNode } from '../helpers/agent.js';
import { FleetLab } from '../helpers/fleet.js';

const container = (name: string, extra = ''): string =>
  `name = "${name}"\n${extra}\n[[components]]\nname = "c"\nruntime = "container"\nimage = "${IMAGE}"\ncmd = ["sleep", "600"]\n`;

describe('fleet over SSH: keyscan, status, pinned host keys, unreachable nodes, bad inventories', () => {
  let lab: FleetLab;
  let inv: string;
  before(async () => {
    lab = await FleetLab.create(['a', 'b', 'c']);
    // Registries made with plain `agent apply` (local files): a has 2 services, b 1, c 1.
    await lab.node('a').agent.apply(container(TestNode.serviceName('fa')), 'one.toml');
    await lab.node('a').agent.apply(container(TestNode.serviceName('fa')), 'two.toml');
    await lab.node('b').agent.apply(container(TestNode.serviceName('fb')));
    await lab.node('c').agent.apply(container(TestNode.serviceName('fc')));
    inv = lab.writeInventory({ labels: { a: { role: 'edge' }, b: { role: 'edge' }, c: { role: 'core' } } });
  });
  after(async () => {
    await lab?.cleanup();
  });

  it('keyscan prints each node\'s host key for the operator to paste, and writes nothing', async () => {
    const r = await lab.fleet(['keyscan', '-i', inv]);
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines, lab.nodes.map((n) => `${n.name} ${n.hostKeyLine}`));
  });

  it('status shows every node reachable with its in-sync / drifted counts', async () => {
    const r = await lab.fleet(['status', '-i', inv, '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; value: { agentRunning: boolean; inSync: number; drifted: number; runtimes: Record<string, { ok: boolean }> } }>;
    assert.deepEqual(rows.map((x) => [x.node, x.ok]), [['a', true], ['b', true], ['c', true]]);
    // Nothing runs the registries: every component is missing, hence drifted.
    assert.deepEqual(rows.map((x) => [x.value.inSync, x.value.drifted, x.value.agentRunning]), [[0, 2, false], [0, 1, false], [0, 1, false]]);
    assert.equal(rows[0]!.value.runtimes.container?.ok, true);
    const table = await lab.fleet(['status', '-i', inv, '--detail']);
    assert.equal(table.exitCode, 0, table.stderr);
    assert.match(table.stdout, /NODE\s+REACHABLE\s+AGENT/);
    assert.match(table.stdout, /\ba\s+yes\s+not running\s+-\s+0\s+2\b/);
    assert.match(table.stdout, /missing/);
    const check = await lab.fleet(['status', '-i', inv, '--check']);
    assert.equal(check.exitCode, 1, 'drifted nodes fail --check');
  });

  it('a node whose sshd is stopped is unreachable while the others answer; --check exits 1', async () => {
    const c = lab.node('c');
    await lab.stopSshd(c);
    try {
      const r = await lab.fleet(['status', '-i', inv, '--json', '--check', '--timeout', '10s']);
      assert.equal(r.exitCode, 1, r.stderr);
      const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; kind?: string; error?: string }>;
      assert.deepEqual(rows.map((x) => [x.node, x.ok]), [['a', true], ['b', true], ['c', false]]);
      assert.equal(rows[2]!.kind, 'unreachable');
      assert.match(rows[2]!.error!, new RegExp(c.address.replace(/\./g, '\\.')));
    } finally {
      await lab.startSshd(c);
    }
  });

  it('a node whose host key is not the pinned one is refused, naming it, and nothing is run there', async () => {
    const b = lab.node('b');
    const wrong = lab.writeInventory({ file: 'wrong-key.toml', hostKey: { b: lab.node('a').hostKeyLine } });
    const logBefore = readFileSync(b.sshdLog, 'utf8').length;
    const dbBefore = statSync(b.agent.db).mtimeMs;
    const r = await lab.fleet(['status', '-i', wrong, '--json']);
    assert.equal(r.exitCode, 0, 'status without --check reports the node, it does not fail');
    const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; kind?: string; error?: string }>;
    assert.deepEqual(rows.map((x) => [x.node, x.ok]), [['a', true], ['b', false], ['c', true]]);
    assert.equal(rows[1]!.kind, 'host-key');
    assert.match(rows[1]!.error!, /host key SHA256:\S+ is not the pinned one/);
    const text = await lab.fleet(['status', '-i', wrong]);
    assert.match(text.stdout, /b\s+no \(host-key\)/);
    // sshd saw a connection but no login: the master never authenticated, so no command ran.
    const log = readFileSync(b.sshdLog, 'utf8').slice(logBefore);
    assert.doesNotMatch(log, /Accepted publickey/);
    assert.equal(statSync(b.agent.db).mtimeMs, dbBefore, 'the registry of b is untouched');
  });

  it('bad inventories exit 2 naming the file and field, and contact no node', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['unknown.toml', `[[nodes]]\nname = "a"\nhost = "${lab.node('a').address}"\nkey = "master_key"\nhots_key = "x"\n`, /nodes\[0\]\.hots_key: is not a known field \(did you mean `host_key`\?\)/],
      ['port.toml', `[[nodes]]\nname = "a"\nhost = "h"\nkey = "master_key"\nport = 70000\n`, /nodes\[0\]\.port: must be between 1 and 65535/],
      ['dup.toml', `[defaults]\nkey = "master_key"\n[[nodes]]\nname = "a"\nhost = "h"\n[[nodes]]\nname = "a"\nhost = "h2"\n`, /nodes\[1\]\.name: duplicates nodes\[0\]\.name 'a'/],
      ['nokey.toml', `[[nodes]]\nname = "a"\nhost = "h"\nkey = "missing_key"\n`, /nodes\[0\]\.key: cannot be read/],
      ['agent.toml', `[[nodes]]\nname = "a"\nhost = "h"\nkey = "master_key"\nagent = "agent --db x"\n`, /nodes\[0\]\.agent: must be an array of words/],
      ['nopin.toml', `[[nodes]]\nname = "a"\nhost = "${lab.node('a').address}"\nkey = "master_key"\n`, /nodes\[0\]\.host_key: is required for node a/],
    ];
    for (const [file, text, rule] of cases) {
      const path = join(lab.dir, file);
      writeFileSync(path, text);
      const logBefore = readFileSync(lab.node('a').sshdLog, 'utf8').length;
      const r = await lab.fleet(['status', '-i', path]);
      assert.equal(r.exitCode, 2, `${file}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`invalid inventory ${path}`), `${file} names the file: ${r.stderr}`);
      assert.match(r.stderr, rule, file);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(readFileSync(lab.node('a').sshdLog, 'utf8').length, logBefore, `${file}: no node was contacted`);
    }
  });

  it('a manifest placed on a node the inventory lacks, or on no node, exits 2 before any node is contacted', async () => {
    const dir = join(lab.dir, 'bad-desired');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'x.toml'), container('fx', 'nodes = ["zz"]'));
    const r = await lab.fleet(['plan', '-i', inv, '-f', dir]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /x\.toml: nodes\[0\]: names node 'zz', which is not in the inventory/);
    writeFileSync(join(dir, 'x.toml'), container('fx', 'selector = { role = "nowhere" }'));
    const r2 = await lab.fleet(['apply', '-i', inv, '-f', dir]);
    assert.equal(r2.exitCode, 2, r2.stderr);
    assert.match(r2.stderr, /x\.toml: selector: places service 'fx' on no node \(pass --allow-unplaced/);
  });
});

// These need the node side's `apply -f - --format json --origin master --prune --json` (branch
// "nodeside"); until it is merged they fail at the node's argument parsing.
describe('fleet apply', () => {
  let lab: FleetLab;
  let inv: string;
  let desired: string;
  const edge = TestNode.serviceName('fe');
  const core = TestNode.serviceName('fc');
  const everywhere = TestNode.serviceName('fw');
  const forced = TestNode.serviceName('ff');
  before(async () => {
    lab = await FleetLab.create(['a', 'b', 'c']);
    inv = lab.writeInventory({ labels: { a: { role: 'edge' }, b: { role: 'edge' }, c: { role: 'core' } } });
    desired = join(lab.dir, 'desired');
    mkdirSync(desired);
    writeFileSync(join(desired, 'edge.toml'), container(edge, 'selector = { role = "edge" }'));
    writeFileSync(join(desired, 'core.toml'), container(core, 'nodes = ["c"]'));
    writeFileSync(join(desired, 'all.toml'), container(everywhere, 'nodes = ["c"]\nselector = { role = "edge" }'));
  });
  after(async () => {
    await lab?.cleanup();
  });

  const services = (n: { agent: TestNode }): string[] =>
    n.agent.query<{ name: string }>('SELECT name FROM services ORDER BY name').map((r) => r.name);

  it('plan shows per node what would be created and changes nothing', async () => {
    const r = await lab.fleet(['plan', '-i', inv, '-f', desired]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^a: would apply created 2/m);
    assert.match(r.stdout, /^c: would apply created 2/m);
  });

  it('apply places services by selector and names, a re-run is unchanged, a removed service is pruned from its nodes only', async () => {
    // A service an operator applied locally on c (origin local) must survive the master's prune.
    const local = TestNode.serviceName('fl');
    await lab.node('c').agent.apply(container(local));
    const r = await lab.fleet(['apply', '-i', inv, '-f', desired]);
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^a: ok created 2, updated 0, unchanged 0, pruned 0/m);
    assert.match(r.stdout, /^c: ok created 2, updated 0, unchanged 0, pruned 0/m);
    assert.deepEqual(services(lab.node('a')), [edge, everywhere].sort());
    assert.deepEqual(services(lab.node('c')), [core, everywhere, local].sort());
    const again = await lab.fleet(['apply', '-i', inv, '-f', desired]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /^b: ok created 0, updated 0, unchanged 2, pruned 0/m);
    rmSync(join(desired, 'core.toml'));
    const pruned = await lab.fleet(['apply', '-i', inv, '-f', desired]);
    assert.equal(pruned.exitCode, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(`^c: ok .*pruned 1 \\[pruned: ${core}\\]`, 'm'));
    assert.deepEqual(services(lab.node('c')), [everywhere, local].sort(), 'the local service survives');
    assert.deepEqual(services(lab.node('a')), [edge, everywhere].sort());
  });

  it('a node that restricts the master key to `agent ssh-serve` (forced command) is applied and reports status; other commands are refused', async () => {
    const b = lab.node('b');
    const keys = join(b.dir, 'authorized_keys');
    const plain = readFileSync(keys, 'utf8');
    // sshd reads authorized_keys at each login: from now on this key may only run the agent's ssh-serve.
    writeFileSync(keys, `command="node ${BIN} --db ${b.agent.db} ssh-serve",restrict ${plain}`);
    const forcedInv = lab.writeInventory({ file: 'forced.toml', labels: { a: { role: 'edge' }, b: { role: 'edge' }, c: { role: 'core' } }, agent: { b: ['agent'] } });
    try {
      writeFileSync(join(desired, 'forced.toml'), container(forced, 'nodes = ["b"]'));
      const r = await lab.fleet(['apply', '-i', forcedInv, '-f', desired]);
      assert.equal(r.exitCode, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /^b: ok created 1, updated 0, unchanged 2, pruned 0/m);
      assert.ok(services(b).includes(forced));
      const st = await lab.fleet(['status', '-i', forcedInv, '--json']);
      assert.equal(st.exitCode, 0, st.stderr);
      const rows = JSON.parse(st.stdout) as Array<{ node: string; ok: boolean }>;
      assert.equal(rows.find((x) => x.node === 'b')?.ok, true, st.stdout);
      // Anything but apply/status/events/plan, or another registry, is refused by the node itself.
      const ssh = (cmd: string) =>
        execa('ip', ['netns', 'exec', lab.masterNs, 'ssh', '-i', lab.masterKey, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts(b)}`, `root@${b.address}`, cmd], { reject: false, stdin: 'ignore' });
      const del = await ssh(`agent delete ${forced}`);
      assert.equal(del.exitCode, 2, del.stderr);
      assert.match(del.stderr, /delete/);
      const other = await ssh(`agent --db /tmp/other.db status`);
      assert.equal(other.exitCode, 2, other.stderr);
      const shell = await ssh('id; rm -rf /tmp/nothing');
      assert.equal(shell.exitCode, 2, shell.stderr);
      assert.ok(services(b).includes(forced), 'nothing was deleted');
    } finally {
      writeFileSync(keys, plain);
      rmSync(join(desired, 'forced.toml'), { force: true });
    }
  });

  const knownHosts = (n: { dir: string; address: string; hostKeyLine: string }): string => {
    const file = join(n.dir, 'known_hosts');
    writeFileSync(file, `${n.address} ${n.hostKeyLine}\n`);
    return file;
  };

  it('a node that is down fails alone: the others are applied, exit 1', async () => {
    const b = lab.node('b');
    await lab.stopSshd(b);
    try {
      const r = await lab.fleet(['apply', '-i', inv, '-f', desired, '--timeout', '10s']);
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stdout, /^a: ok /m);
      assert.match(r.stdout, /^b: FAILED \(unreachable\)/m);
      assert.match(r.stdout, /^c: ok /m);
    } finally {
      await lab.startSshd(b);
    }
  });
});
