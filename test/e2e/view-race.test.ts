// The live observed view against real podman: a container killed again and again while full
// relists run every second (so deaths land before, during and after listings) is restarted
// exactly once per death: no double start when an event and a relist race, no second container.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { execa } from 'execa';
import { containerService, SLEEP, TestNode, waitFor } from '../helpers/agent.js';

interface PodmanEventLine {
  Status: string;
  Time: string;
}

describe('the live view: events racing relists', () => {
  const node = new TestNode();
  after(() => node.cleanup());

  it('each kill gives exactly one restart, while relists run every second', async () => {
    const svc = TestNode.serviceName('race');
    const name = `${svc}-api`;
    await node.apply(containerService(svc, { api: SLEEP }));
    const config = join(node.dir, 'race.toml');
    // A short backoff, so that each kill is restarted at once and the test stays short.
    writeFileSync(config, 'resync = "* * * * * *"\n[backoff]\nbase_ms = 20\nmax_ms = 40\n');
    node.startAgent({ AGENT_CONFIG: config });
    await waitFor('api running', async () => (await node.containers()).find((c) => c.State === 'running'), 30_000);
    const events = execa('podman', ['events', '--format', 'json', '--filter', `container=${name}`], { reject: false, buffer: true, stdin: 'ignore' });
    await new Promise((r) => setTimeout(r, 500)); // the events stream is reading

    const kills = 8;
    for (let i = 0; i < kills; i++) {
      // Offsets across the second, so some deaths land while the resync's listing is under way.
      await new Promise((r) => setTimeout(r, 1000 + i * 130 - (Date.now() % 1000)));
      await execa('podman', ['kill', name]);
      await waitFor(`restart ${i + 1}`, async () => {
        const done = node.query<{ n: number }>("SELECT count(*) AS n FROM events WHERE action = 'restart' AND outcome = 'ok' AND workload = ?", name)[0]!.n;
        return done >= i + 1 && (await node.containers())[0]?.State === 'running';
      }, 20_000, 20);
    }
    await new Promise((r) => setTimeout(r, 2500)); // two more relists: a late double start would show
    events.kill('SIGTERM');
    const out = String((await events).stdout);
    const statuses = out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as PodmanEventLine).Status).filter((s) => ['create', 'start', 'died'].includes(s));
    assert.equal(statuses.filter((s) => s === 'create').length, 0, `no new container: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 'died').length, kills, statuses.join(' '));
    assert.equal(statuses.filter((s) => s === 'start').length, kills, `one start per death: ${statuses.join(' ')}`);

    const containers = await node.containers();
    assert.deepEqual(containers.map((c) => c.State), ['running'], 'one container, running');
    const restarts = node.query<{ outcome: string }>("SELECT outcome FROM events WHERE action = 'restart' AND workload = ?", name);
    assert.equal(restarts.length, kills, `the agent restarted once per kill: ${JSON.stringify(restarts)}`);
    assert.ok(restarts.every((r) => r.outcome === 'ok'), JSON.stringify(restarts));
    const starts = node.query<{ n: number }>("SELECT count(*) AS n FROM events WHERE action = 'start' AND workload = ?", name);
    assert.equal(starts[0]!.n, 1, 'started once, at the beginning');
  });
});
