// The NATS desired-state source against a real nats-server -js (free loopback port, temp store)
// and real podman: put, update, delete, refusals, kill -9 and resume, an outage, a 3-server
// cluster, two nodes on one host. Containers are named nx<hex>-<component>.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { SLEEP, TestNode, row, waitFor, type StatusJson } from '../helpers/agent.js';
import { NatsServer, TestMaster, natsService, startCluster } from '../helpers/nats-server.js';

const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };

/** A node whose agent reads desired state from `urls` as node `name`. */
function natsNode(urls: string[], name: string, bucket: string): NatsNode {
  const node = new TestNode();
  const config = join(node.dir, 'agent.toml');
  writeFileSync(config, `[source.nats]\nurls = ${JSON.stringify(urls)}\nbucket = "${bucket}"\nnode = "${name}"\n`);
  return { node, env: { AGENT_CONFIG: config } };
}

/** One server, the test's master on bucket nxb, and a node per name watching it; all cleaned up after the test. */
type NatsNode = { node: TestNode; env: Record<string, string> };
async function natsSetup<N extends string[]>(t: TestContext, ...names: N): Promise<{ server: NatsServer; master: TestMaster; nodes: { [K in keyof N]: NatsNode } }> {
  const server = await NatsServer.start();
  t.after(() => server.cleanup());
  const master = await TestMaster.open([server.url], 'nxb');
  t.after(() => master.close());
  const nodes = names.map((n) => natsNode([server.url], n, 'nxb'));
  for (const n of nodes) t.after(() => n.node.cleanup());
  return { server, master, nodes: nodes as { [K in keyof N]: NatsNode } };
}

type SourceJson = { state: string; revision: number | null; rejected: Array<{ key: string; error: string }> } | null;
const sourceOf = (s: StatusJson): SourceJson => (s as unknown as { source: SourceJson }).source;
const running = async (node: TestNode, svc: string, comp = 'a'): Promise<string | undefined> => {
  const c = (await node.containers()).find((x) => x.Names[0] === `${svc}-${comp}` && x.State === 'running');
  return c?.Id;
};
const applyEvents = (node: TestNode, svc: string): number => node.query<{ n: number }>("SELECT count(*) AS n FROM events WHERE service = ? AND action = 'apply'", svc)[0]!.n;

describe('nats source, end to end', () => {
  it('put runs it and status.<node> says in sync; update replaces; a bad value changes nothing; delete removes', async (t) => {
    const { master, nodes: [{ node, env }] } = await natsSetup(t, 'nxn1');
    node.startAgent({ ...env });
    const svc = TestNode.serviceName('nx');

    await master.put(`desired.nxn1.${svc}`, natsService(svc, { a: SLEEP }));
    const first = await waitFor('the container', () => running(node, svc), 60_000);
    const origin = node.query<{ origin: string }>('SELECT origin FROM services WHERE name = ?', svc)[0]?.origin;
    assert.equal(origin, 'nats');
    const summary = await waitFor('status.nxn1 in sync', async () => {
      const s = await master.status('nxn1');
      const counts = s?.counts as Record<string, number> | undefined;
      return counts && counts['in-sync'] === 1 && s?.failing_total === 0 ? s : undefined;
    }, 60_000);
    assert.equal((summary.source as { applied_revision: number }).applied_revision > 0, true);
    const st = await node.status();
    assert.equal(sourceOf(st)?.state, 'connected');
    assert.match((await node.ok(['status'])), /source: +nats nats:\/\/127\.0\.0\.1:\d+ bucket nxb node nxn1: connected, revision \d+/);

    // Update: a new command replaces the container.
    await master.put(`desired.nxn1.${svc}`, natsService(svc, { a: ['sleep', '2147483646'] }));
    const second = await waitFor('the replaced container', async () => {
      const id = await running(node, svc);
      return id && id !== first ? id : undefined;
    }, 60_000);
    assert.equal(row(await node.status(), svc, 'a').drift, 'in-sync');

    // Bad values: not JSON, the wrong name, a collision with a local service. Nothing changes.
    const local = TestNode.serviceName('nx');
    await node.apply(`name = "${local}"\nruntime = "container"\n[[components]]\nname = "a"\nimage = "localhost/agent-busybox:latest"\ncmd = ["sleep", "2147483647"]\n`);
    const before = node.query('SELECT name, origin, updated_at FROM services ORDER BY name');
    await master.put(`desired.nxn1.${svc}`, '{not json');
    await master.put(`desired.nxn1.${local}`, natsService(local, { a: SLEEP }));
    const other = TestNode.serviceName('nx');
    await master.put(`desired.nxn1.${other}`, natsService('someone', { a: SLEEP }));
    const refused = await waitFor('three refusals in status.nxn1', async () => {
      const s = await master.status('nxn1');
      const r = (s?.source as { rejected: Array<{ key: string; error: string }> } | undefined)?.rejected ?? [];
      return r.length === 3 ? r : undefined;
    }, 30_000);
    assert.ok(refused.some((r) => r.key === `desired.nxn1.${local}` && /collision/.test(r.error)), JSON.stringify(refused));
    assert.ok(refused.some((r) => r.key === `desired.nxn1.${other}` && /must equal the key's service/.test(r.error)));
    assert.deepEqual(node.query('SELECT name, origin, updated_at FROM services ORDER BY name'), before);
    assert.equal(await running(node, svc), second, 'the running container is untouched');
    const ev = node.query<{ service: string; message: string }>("SELECT service, message FROM events WHERE action = 'refuse'");
    assert.equal(ev.length, 3, JSON.stringify(ev));
    assert.equal(sourceOf(await node.status())?.rejected.length, 3);

    // A good value again clears its refusal; delete removes the service and its container.
    await master.put(`desired.nxn1.${svc}`, natsService(svc, { a: ['sleep', '2147483646'] }));
    await master.kv.delete(`desired.nxn1.${svc}`);
    await waitFor('the container removed', async () => !(await node.containers()).some((c) => c.Names[0] === `${svc}-a`), 60_000);
    assert.equal(node.query('SELECT name FROM services WHERE name = ?', svc).length, 0);
    // A deleted key of a local service deletes nothing.
    await master.kv.delete(`desired.nxn1.${local}`);
    await waitFor('refusal of the local key cleared', async () => ((await master.status('nxn1'))?.source as { rejected: unknown[] }).rejected.length === 1 || undefined, 30_000);
    assert.equal(node.query('SELECT name FROM services WHERE name = ?', local).length, 1);
  });
});

describe('nats source: restarts, outages, clusters, several nodes', () => {
  it('after kill -9 while keys change, a new agent resumes from its revision and converges', async (t) => {
    const { master, nodes: [{ node, env }] } = await natsSetup(t, 'nxk');
    const agent = node.startAgent({ ...env, ...NO_RESYNC });
    const steady = TestNode.serviceName('nx');
    await master.put(`desired.nxk.${steady}`, natsService(steady, { a: SLEEP }));
    await waitFor('the first service', () => running(node, steady), 60_000);
    const later = [0, 1, 2].map(() => TestNode.serviceName('nx'));
    const puts = later.map((s) => master.put(`desired.nxk.${s}`, natsService(s, { a: SLEEP })));
    process.kill(agent.pid!, 'SIGKILL');
    await agent;
    await Promise.all(puts);
    const steadyApplies = applyEvents(node, steady);
    assert.equal(steadyApplies, 1);
    node.startAgent({ ...env, ...NO_RESYNC });
    for (const s of later) await waitFor(`${s} running`, () => running(node, s), 60_000);
    assert.equal(applyEvents(node, steady), 1, 'the unchanged service was not applied again');
    for (const s of later) assert.equal(applyEvents(node, s), 1, `${s} applied once`);
    const log = (await execa('cat', [join(node.dir, 'agent.log')])).stdout;
    assert.match(log, /nats watch resumes after the stored revision/);
  });

  it('with nats-server down the agent repairs a killed container, says disconnected, and catches up after', async (t) => {
    const { server, master, nodes: [{ node, env }] } = await natsSetup(t, 'nxo');
    node.startAgent({ ...env });
    const svc = TestNode.serviceName('nx');
    await master.put(`desired.nxo.${svc}`, natsService(svc, { a: SLEEP }));
    const first = await waitFor('the container', () => running(node, svc), 60_000);
    await server.stop();
    await waitFor('status says disconnected', async () => sourceOf(await node.status())?.state === 'disconnected' || undefined, 30_000);
    assert.match(await node.ok(['status']), /source: +nats .* disconnected since /);
    await execa('podman', ['kill', `${svc}-a`]);
    const repaired = await waitFor('repaired without NATS', async () => {
      const id = await running(node, svc);
      return id && (await node.status()).components.find((c) => c.workload === `${svc}-a`)?.drift === 'in-sync' ? id : undefined;
    }, 60_000);
    assert.ok(repaired);
    // The server comes back with the same store; a change made now is picked up (no agent restart).
    await new Promise((r) => setTimeout(r, 15_000)); // the outage lasts ~20 s in all
    await server.start();
    const next = TestNode.serviceName('nx');
    // The test's own client reconnects with backoff too: retry the put until it is accepted.
    await waitFor('a put after the restart', async () => master.put(`desired.nxo.${next}`, natsService(next, { a: SLEEP })).then(() => true, () => undefined), 60_000, 500);
    await waitFor('the change made after the restart', () => running(node, next), 90_000);
    await waitFor('status says connected', async () => sourceOf(await node.status())?.state === 'connected' || undefined, 30_000);
    assert.ok(first);
  });

  it('two agents with different node names on one host each get only their keys', async (t) => {
    const { master, nodes: [one, two] } = await natsSetup(t, 'nxa', 'nxz');
    one.node.startAgent(one.env);
    two.node.startAgent(two.env);
    const s1 = TestNode.serviceName('nx');
    const s2 = TestNode.serviceName('nx');
    await master.put(`desired.nxa.${s1}`, natsService(s1, { a: SLEEP }));
    await master.put(`desired.nxz.${s2}`, natsService(s2, { a: SLEEP }));
    await waitFor('s1 on one', () => running(one.node, s1), 60_000);
    await waitFor('s2 on two', () => running(two.node, s2), 60_000);
    assert.deepEqual(one.node.query<{ name: string }>('SELECT name FROM services').map((r) => r.name), [s1]);
    assert.deepEqual(two.node.query<{ name: string }>('SELECT name FROM services').map((r) => r.name), [s2]);
    await waitFor('both statuses', async () => ((await master.status('nxa')) && (await master.status('nxz'))) || undefined, 30_000);
  });

  it('a 3-server cluster (replicas 3) with one server killed keeps delivering', async (t) => {
    const servers = await startCluster();
    t.after(async () => {
      for (const s of servers) await s.cleanup();
    });
    const urls = servers.map((s) => s.url);
    const master = await TestMaster.open(urls, 'nxc', { replicas: 3 });
    t.after(() => master.close());
    const { node, env } = natsNode(urls, 'nxc1', 'nxc');
    t.after(() => node.cleanup());
    node.startAgent(env);
    const s1 = TestNode.serviceName('nx');
    await master.put(`desired.nxc1.${s1}`, natsService(s1, { a: SLEEP }));
    await waitFor('s1', () => running(node, s1), 60_000);
    await servers[0]!.stop();
    const s2 = TestNode.serviceName('nx');
    // The put may need a retry while the cluster elects a new leader for the stream.
    await waitFor('a put accepted by the remaining two', async () => master.put(`desired.nxc1.${s2}`, natsService(s2, { a: SLEEP })).then(() => true, () => undefined), 60_000, 1000);
    await waitFor('s2 delivered with a server down', () => running(node, s2), 90_000);
  });
});
