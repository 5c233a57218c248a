// A full disk under the registry, for real: a 4 MiB tmpfs filled with dd while `agent run` runs.
// The agent must stay up and keep supervising (a killed container comes back), say once that the
// registry is not writable and once that it is again, write its queued bookkeeping then, in
// order, and corrupt nothing; status must say so, and a CLI write must fail cleanly, changing nothing.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { TmpfsRegistryNode, TestNode, containerService, waitFor, SLEEP } from '../helpers/agent.js';

/** The agent's JSON log lines whose message matches (a crash's stack trace is not JSON: skipped). */
const logLines = (node: TestNode, msg: RegExp): string[] =>
  readFileSync(join(node.dir, 'agent.log'), 'utf8')
    .split('\n')
    .filter((l) => {
      try {
        return msg.test((JSON.parse(l) as { msg?: string }).msg ?? '');
      } catch {
        return false;
      }
    });

const containerPid = async (name: string): Promise<number> => Number((await execa('podman', ['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());

const dump = async (db: string): Promise<string> => (await execa('sqlite3', [db, '.dump'])).stdout;

describe('a full disk under the registry', () => {
  it('keeps the agent up and supervising, queues its bookkeeping, and refuses CLI writes cleanly', async (t) => {
    const node = new TmpfsRegistryNode();
    t.after(() => node.cleanup());
    await node.mount(4);
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }));
    const agent = node.startAgent({ AGENT_RESYNC: '0 0 0 1 1 *' });
    await waitFor('the container to run', async () => (await node.containers()).find((c) => c.Names[0] === `${svc}-api` && c.State === 'running'), 60_000);
    const firstPid = await containerPid(`${svc}-api`);

    await node.fill();
    await execa('podman', ['kill', `${svc}-api`]);
    await waitFor('the agent to see the disk refuse its writes', async () => logLines(node, /^registry not writable/).length > 0, 60_000);
    await waitFor('the killed container to run again', async () => {
      const c = (await node.containers()).find((x) => x.Names[0] === `${svc}-api`);
      return c?.State === 'running' && (await containerPid(`${svc}-api`)) !== firstPid;
    }, 60_000);
    assert.equal(agent.exitCode, null, 'the agent is still running');

    const st = await node.status();
    assert.equal(st.registry.writable, false);
    assert.match(st.registry.reason ?? '', /the disk is full/);
    assert.match(await node.ok(['status']), /^registry: .*agent\.db NOT WRITABLE \(the disk is full/m);

    const before = await dump(node.db);
    const r = await node.cli(['apply', '-f', '-', '--format', 'toml'], { input: containerService(TestNode.serviceName(), { x: SLEEP }) });
    assert.equal(r.exitCode, 3, r.stderr);
    assert.equal(r.stderr, `agent: cannot write registry ${node.db}: the disk is full (database or disk is full); nothing was changed`);
    const d = await node.cli(['delete', svc]);
    assert.equal(d.exitCode, 3, d.stderr);
    assert.match(d.stderr, /^agent: cannot write registry .*: the disk is full .*; nothing was changed$/);
    assert.equal(await dump(node.db), before, 'the registry is unchanged');
    assert.ok(!(await node.ok(['events', '--json'])).includes('"restart"'), 'the restart is not written yet');

    node.unfill();
    await waitFor('the agent to say the registry is writable again', async () => logLines(node, /^registry writable again/).length > 0, 60_000);
    const events = JSON.parse(await node.ok(['events', '--json', '--service', svc])) as Array<{ action: string; outcome: string; component: string }>;
    assert.ok(events.some((e) => e.action === 'restart' && e.outcome === 'ok' && e.component === 'api'), `the queued restart event: ${JSON.stringify(events)}`);
    assert.equal((await execa('sqlite3', [node.db, 'PRAGMA integrity_check;'])).stdout.trim(), 'ok');
    assert.equal((await node.status()).registry.writable, true);
    assert.equal(logLines(node, /^registry not writable/).length, 1, 'the condition logged once');
    assert.equal(logLines(node, /^registry writable again/).length, 1, 'the clear logged once');
    assert.equal(agent.exitCode, null, 'the agent is still running');
  });
});
