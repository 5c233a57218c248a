// `fleet apply --wait` and `fleet events` against real nodes (test/helpers/fleet.ts): two netns
// nodes with a real sshd each, and a real `agent run` per node registry (plain processes in the
// main namespace: they only talk to local podman and SQLite). Every `agent fleet` runs inside the
// master namespace. The lab's cleanup stops the agents, containers, sshds and namespaces.
import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IMAGE, TestNode } from '../helpers/agent.js';
import { FleetLab } from '../helpers/fleet.js';

const container = (name: string, placement: string, image = IMAGE): string =>
  `name = "${name}"\n${placement}\n[[components]]\nname = "c"\nruntime = "container"\nimage = "${image}"\ncmd = ["sleep", "600"]\n`;

interface EventJson {
  at: string;
  node: string;
  service: string | null;
  action: string;
}

describe('fleet apply --wait and fleet events, with a running agent on each node', () => {
  let lab: FleetLab;
  let inv: string;
  let desired: string;
  const onA = TestNode.serviceName('wa');
  const onB = TestNode.serviceName('wb');
  const broken = TestNode.serviceName('wx');
  before(async () => {
    lab = await FleetLab.create(['a', 'b']);
    inv = lab.writeInventory();
    desired = join(lab.dir, 'desired');
    mkdirSync(desired);
    writeFileSync(join(desired, 'a.toml'), container(onA, 'nodes = ["a"]'));
    writeFileSync(join(desired, 'b.toml'), container(onB, 'nodes = ["b"]'));
    for (const n of lab.nodes) n.agent.startAgent();
  });
  after(async () => {
    await lab?.cleanup();
  });

  it('apply --wait returns 0 once every node reports every component in sync; status --check agrees', async () => {
    const r = await lab.fleet(['apply', '-i', inv, '-f', desired, '--wait', '--wait-timeout', '3m']);
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^a: ok created 1/m);
    assert.match(r.stdout, /^b: ok created 1/m);
    assert.match(r.stdout, /^a: converged \(1 in sync\)$/m);
    assert.match(r.stdout, /^b: converged \(1 in sync\)$/m);
    // Not a TTY here: progress is plain lines on stderr, one per change of a node's count.
    assert.match(r.stderr, /^a: (0\/1 in sync|in sync \(1 components\))$/m);
    const check = await lab.fleet(['status', '-i', inv, '--check']);
    assert.equal(check.exitCode, 0, check.stderr + check.stdout);
    assert.deepEqual((await lab.node('a').agent.containers()).map((c) => c.State), ['running']);
  });

  it('events -n 5 merges both nodes\' newest events, newest first', async () => {
    const r = await lab.fleet(['events', '-i', inv, '-n', '5', '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const { events, failures } = JSON.parse(r.stdout) as { events: EventJson[]; failures: unknown[] };
    assert.deepEqual(failures, []);
    // The same merge done here from each node's own `events --json`.
    const perNode: EventJson[] = [];
    for (const n of lab.nodes) {
      const own = JSON.parse(await n.agent.ok(['events', '--json', '-n', '5'])) as EventJson[];
      perNode.push(...own.map((e) => ({ ...e, node: n.name })));
    }
    const expected = perNode.sort((x, y) => Date.parse(y.at) - Date.parse(x.at)).slice(0, 5);
    assert.deepEqual(events.map((e) => [e.node, e.at, e.action, e.service]), expected.map((e) => [e.node, e.at, e.action, e.service]));
    assert.ok(events.length >= 2 && events.length <= 5, `${events.length} events`);
    const times = events.map((e) => Date.parse(e.at));
    assert.deepEqual(times, [...times].sort((x, y) => y - x), 'newest first');
    assert.deepEqual([...new Set(events.map((e) => e.node))].sort(), ['a', 'b'], 'both nodes appear');
    assert.ok(events.some((e) => e.service === onA) && events.some((e) => e.service === onB), JSON.stringify(events));
    // The table: oldest first, a NODE column.
    const text = await lab.fleet(['events', '-i', inv, '-n', '5']);
    assert.equal(text.exitCode, 0, text.stderr);
    assert.match(text.stdout, /TIME\s+NODE\s+COMPONENT/);
    assert.match(text.stdout, new RegExp(`\\sa\\s+${onA}/c\\s`));
    assert.match(text.stdout, new RegExp(`\\sb\\s+${onB}/c\\s`));
  });

  it('events --nodes b asks only node b', async () => {
    const r = await lab.fleet(['events', '-i', inv, '-n', '50', '--json', '--nodes', 'b']);
    assert.equal(r.exitCode, 0, r.stderr);
    const { events } = JSON.parse(r.stdout) as { events: EventJson[] };
    assert.ok(events.length > 0, 'node b has events');
    assert.deepEqual([...new Set(events.map((e) => e.node))], ['b']);
    const unknown = await lab.fleet(['events', '-i', inv, '--nodes', 'zz']);
    assert.equal(unknown.exitCode, 2, unknown.stderr);
    assert.match(unknown.stderr, /--nodes/);
  });

  it('a component that cannot start keeps its node from converging: --wait exits 1 naming it, the other node converges', async () => {
    writeFileSync(join(desired, 'broken.toml'), container(broken, 'nodes = ["a"]', 'localhost/nope:1'));
    const r = await lab.fleet(['apply', '-i', inv, '-f', desired, '--wait', '--wait-timeout', '20s']);
    assert.equal(r.exitCode, 1, r.stderr + r.stdout);
    assert.match(r.stdout, /^a: ok created 1, updated 0, unchanged 1/m);
    assert.match(r.stdout, new RegExp(`^a: NOT CONVERGED after 20s: 1 drifted: ${broken}/c \\w+`, 'm'));
    assert.match(r.stdout, /^b: converged \(1 in sync\)$/m);
    assert.match(r.stderr, /1 node\(s\) did not converge within --wait-timeout 20s: a\b/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('keyscan --json gives each node\'s key line', async () => {
    const r = await lab.fleet(['keyscan', '-i', inv, '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), lab.nodes.map((n) => ({ node: n.name, ok: true, key: n.hostKeyLine })));
  });

  it('--wait-timeout must be a duration (exit 2, no node contacted)', async () => {
    const r = await lab.fleet(['apply', '-i', inv, '-f', desired, '--wait', '--wait-timeout', 'soon']);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /--wait-timeout: must be a duration/);
  });
});
