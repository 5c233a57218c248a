// The instances rows and the events log stay true across kill -9 (issue 7, defect 4): an action
// is in the log before the runtime is touched, an intent left open by a killed agent is marked
// interrupted by the next one, and a pass forgets rows of workloads that exist nowhere and that no
// component wants (failed starts with no handle included).
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { TestNode, containerService, waitFor, SLEEP } from '../helpers/agent.js';

const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };
/** Ignores SIGTERM, so that a stop lasts the whole grace period. */
const STUBBORN = ['sh', '-c', 'trap "" TERM; while :; do sleep 1; done'];

interface EventRow {
  action: string;
  outcome: string;
  message: string;
}

const instances = (node: TestNode): Array<{ workload: string; handle: string | null }> => node.query('SELECT workload, handle FROM instances');

describe('instances rows and the events log across kill -9', () => {
  it('delete, then kill -9 while the remove is under way: the next pass logs it interrupted, removes the workload and its row', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    const config = join(node.dir, 'agent.toml');
    writeFileSync(config, 'stop_grace_seconds = 5\n');
    await node.apply(containerService(svc, { api: STUBBORN }));
    await node.ok(['run', '--once']);
    assert.equal(instances(node).length, 1);
    const agent = node.startAgent({ ...NO_RESYNC, AGENT_CONFIG: config });
    await waitFor('the agent to claim the registry', async () => node.query("SELECT key FROM meta WHERE key = 'reconciler'").length > 0);
    await node.ok(['delete', svc]);
    // The remove is logged before podman is asked to stop; the stop then lasts 5 s: kill in it.
    await waitFor('the remove intent', async () => node.query("SELECT id FROM events WHERE action = 'remove' AND outcome = 'pending'").length > 0, 20_000, 20);
    process.kill(agent.pid!, 'SIGKILL');
    await agent;

    await node.ok(['run', '--once'], { env: { AGENT_CONFIG: config } });
    assert.deepEqual(instances(node), [], 'no row is left');
    assert.deepEqual(await node.containers(), []);
    const removes = (JSON.parse(await node.ok(['events', '--json', '-n', '20'])) as EventRow[]).filter((e) => e.action === 'remove');
    assert.ok(removes.some((e) => e.outcome === 'interrupted' && /the agent ended before this finished/.test(e.message)), JSON.stringify(removes));
    assert.ok(removes.every((e) => e.outcome !== 'pending'), JSON.stringify(removes));
  });

  it('a workload that went while no agent watched (a stop + rm finished by a killed agent\'s child): its row goes', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }));
    await node.ok(['run', '--once']);
    assert.equal(instances(node).length, 1);
    await node.ok(['delete', svc]);
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-api`]);
    await node.ok(['run', '--once']);
    assert.deepEqual(instances(node), []);
  });

  it('a failed start (no handle, backoff fields) leaves no row once its service is deleted', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { api: SLEEP }).replace('localhost/agent-busybox:latest', 'localhost/nope:1'));
    const r = await node.cli(['run', '--once']);
    assert.equal(r.exitCode, 1, r.stderr);
    const rows = node.query<{ handle: string | null; failures: number }>('SELECT handle, failures FROM instances');
    assert.deepEqual(rows, [{ handle: null, failures: 1 }]);
    await node.ok(['delete', svc]);
    await node.ok(['run', '--once']);
    assert.deepEqual(instances(node), []);
  });
});
