// The long-running agent: wakes on a master's commit and on runtime events, survives kill -9
// without duplicating workloads, stops cleanly on SIGTERM, and treats a broken runtime as unknown.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { TestNode, containerService, row, waitFor, SLEEP } from '../helpers/agent.js';

/** A resync schedule that never fires during a test: what happens must come from the other wakes. */
const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };

describe('the agent loop, end to end', () => {
  it('after kill -9 mid-way, a new agent adopts what runs: no restart, no duplicate', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    const comps = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((c) => [c, SLEEP]));
    await node.apply(containerService(svc, comps));
    // One start at a time, so the kill lands mid-way whatever the machine's speed: with the
    // default parallelism a fast machine had all six running before the first poll saw one.
    const config = join(node.dir, 'serial.toml');
    writeFileSync(config, 'parallelism = 1\n');
    const agent = node.startAgent({ ...NO_RESYNC, AGENT_CONFIG: config });
    // Kill it as soon as the first container runs: the others are mid-start or not begun.
    await waitFor('a first container', async () => (await node.containers()).some((c) => c.State === 'running'), 30_000, 20);
    process.kill(agent.pid!, 'SIGKILL');
    await agent;
    const survivors = new Map((await node.containers()).filter((c) => c.State === 'running').map((c) => [c.Names[0]!, c.Id]));
    assert.ok(survivors.size >= 1 && survivors.size < 6, `killed mid-way: ${survivors.size} of 6 were running`);

    // podman commands the dead agent had launched may still finish; a few passes converge.
    for (let i = 0; i < 5; i++) {
      await node.cli(['run', '--once']);
      const st = await node.status();
      if (st.summary['in-sync'] === 6) break;
    }
    const ps = await node.containers();
    assert.equal(ps.length, 6, `exactly one container per component: ${ps.map((c) => c.Names[0]).join(',')}`);
    assert.ok(ps.every((c) => c.State === 'running'));
    for (const [name, id] of survivors) {
      assert.equal(ps.find((c) => c.Names[0] === name)?.Id, id, `${name} was adopted, not restarted`);
    }
    assert.deepEqual((await node.status()).summary, { 'in-sync': 6 });
  });

  it('notices a commit by another SQLite client (sqlite3) without waiting for the resync', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.ok(['run', '--once']); // creates and migrates the registry
    const agent = node.startAgent({ ...NO_RESYNC });
    await waitFor('the agent heartbeat', async () => (await node.status()).agent.running);

    const sql = `BEGIN IMMEDIATE;
      INSERT INTO services (name, active) VALUES ('${svc}', 1);
      INSERT INTO components (service, name, runtime, image, cmd) VALUES ('${svc}', 'pushed', 'container', 'localhost/agent-busybox:latest', '["sleep","2147483647"]');
      COMMIT;`;
    await execa('sqlite3', [node.db], { input: sql });
    const c = await waitFor('the pushed component to run', async () => (await node.containers()).find((x) => x.Names[0] === `${svc}-pushed` && x.State === 'running'));
    assert.equal(c.Labels?.['io.mcp-agent.component'], `${svc}/pushed`);

    // and the delete pushed the same way
    await execa('sqlite3', [node.db], { input: `PRAGMA foreign_keys = ON; DELETE FROM services WHERE name = '${svc}';` });
    await waitFor('the deleted component to go', async () => (await node.containers()).length === 0);
    assert.equal(agent.exitCode, null, 'agent still running');
  });

  it('a container killed behind its back is restarted on the runtime event, not the resync', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }));
    node.startAgent({ ...NO_RESYNC });
    const first = await waitFor('api running', async () => (await node.containers()).find((c) => c.State === 'running'));
    await execa('podman', ['kill', `${svc}-api`]);
    await waitFor('api restarted', async () => {
      const r = row(await node.status(), svc, 'api');
      return r.drift === 'in-sync' && r.restarts === 1;
    });
    const now = (await node.containers())[0]!;
    assert.equal(now.Id, first.Id, 'restarted in place');
    assert.equal(now.State, 'running');
  });

  it('one reconciler per registry: a second run or run --once is refused while the agent lives, and a dead one is taken over', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }));
    const agent = node.startAgent({ ...NO_RESYNC });
    await waitFor('api running', async () => (await node.containers()).find((c) => c.State === 'running'));
    await waitFor('status to see the agent', async () => (await node.status()).agent.running);
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-api`]); // drift a second reconciler would act on

    for (const args of [['run', '--once'], ['run']]) {
      const r = await node.cli(args);
      assert.equal(r.exitCode, 5, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`another agent reconciles .*pid ${agent.pid}`));
    }
    // the refused commands started nothing: the agent alone repairs, exactly one container
    await waitFor('the agent to repair api', async () => (await node.containers()).some((c) => c.State === 'running'));
    assert.equal((await node.containers()).length, 1);

    process.kill(agent.pid!, 'SIGKILL');
    await agent;
    assert.equal((await node.status()).agent.running, false, 'a killed agent is not reported running');
    await node.ok(['run', '--once']); // the dead agent's claim is taken over
    assert.deepEqual((await node.status()).summary, { 'in-sync': 1 });

    // status tells a one-shot pass under way from a running agent (six starts, one at a time)
    await node.apply(containerService(svc, Object.fromEntries(['api', 'b', 'c', 'd', 'e', 'f'].map((c) => [c, SLEEP]))));
    const serial = join(node.dir, 'serial.toml');
    writeFileSync(serial, 'parallelism = 1\n');
    const once = node.cli(['run', '--once'], { env: { AGENT_CONFIG: serial } });
    const seen = await waitFor('status to see the run --once', async () => {
      const a = (await node.status()).agent;
      return a.once_in_progress ? a : undefined;
    }, 30_000, 50);
    assert.equal(seen.running, false);
    assert.equal((await once).exitCode, 0);
    const after = (await node.status()).agent;
    assert.deepEqual([after.running, after.once_in_progress], [false, false]);
  });

  it('SIGTERM stops the agent cleanly and leaves its workloads running', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }));
    const agent = node.startAgent();
    await waitFor('api running', async () => (await node.containers()).find((c) => c.State === 'running'));
    await waitFor('status to see the agent', async () => (await node.status()).agent.running);
    process.kill(agent.pid!, 'SIGTERM');
    const res = await agent;
    assert.equal(res.exitCode, 0);
    const ps = await node.containers();
    assert.equal(ps.length, 1);
    assert.equal(ps[0]!.State, 'running');
    const st = await node.status();
    assert.equal(st.agent.running, false);
    assert.equal(row(st, svc, 'api').drift, 'in-sync');
  });

  it('when podman cannot list, its components are unknown (never missing) and nothing is started', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP, db: SLEEP }));
    await node.ok(['run', '--once']);
    const before = await node.containers();
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-db`]);

    const broken = { AGENT_PODMAN: '/nonexistent/podman' };
    const st = JSON.parse((await node.ok(['status', '--json'], { env: broken })) as string) as Awaited<ReturnType<TestNode['status']>>;
    assert.equal(st.runtimes.container?.ok, false);
    assert.match(st.runtimes.container?.error ?? '', /podman is not installed/);
    for (const c of ['api', 'db']) {
      const r = row(st, svc, c);
      assert.equal(r.drift, 'unknown');
      assert.equal(r.observed, 'unknown');
      assert.equal(r.next_action, null);
      assert.match(r.reason, /container runtime cannot list workloads: .*podman is not installed/);
    }
    const planned = await node.ok(['plan'], { env: broken });
    assert.match(planned, /the container runtime cannot list \(.*podman is not installed.*\): its components are unknown and left alone/);
    assert.doesNotMatch(planned, /nothing to do/);
    const once = await node.cli(['run', '--once'], { env: broken });
    assert.equal(once.exitCode, 0);
    const events = JSON.parse(await node.ok(['events', '--json'])) as Array<{ action: string }>;
    assert.equal(events.filter((e) => e.action === 'start').length, 2, 'only the two starts of the first pass');
    // the running one was left alone; with podman back, the missing one is repaired
    const after = await node.containers();
    assert.equal(after.find((c) => c.Names[0] === `${svc}-api`)?.Id, before.find((c) => c.Names[0] === `${svc}-api`)?.Id);
    await node.ok(['run', '--once']);
    assert.deepEqual((await node.status()).summary, { 'in-sync': 2 });
  });
});
