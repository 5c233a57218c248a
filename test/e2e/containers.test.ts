// End to end through the real CLI, real SQLite and real podman: the reconcile story of one node.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { TestNode, containerService, row, waitFor, SLEEP, PODMAN_FLAGS, IMAGE } from '../helpers/agent.js';

describe('container reconcile, end to end', () => {
  it('starts a service, repairs drift behind its back, replaces on spec change, removes on delete', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();

    // apply + one reconcile: the container runs with our labels
    assert.match(await node.apply(containerService(svc, { api: SLEEP, worker: SLEEP })), new RegExp(`service ${svc} created \\(2 components\\)`));
    let st = await node.status();
    assert.equal(row(st, svc, 'api').drift, 'missing');
    assert.match(row(st, svc, 'api').next_action ?? '', /^start/);
    await node.ok(['run', '--once']);
    let ps = await node.containers();
    assert.equal(ps.length, 2);
    const api = ps.find((c) => c.Names[0] === `${svc}-api`);
    assert.ok(api, `container ${svc}-api in podman ps: ${JSON.stringify(ps.map((c) => c.Names))}`);
    assert.equal(api.State, 'running');
    assert.equal(api.Labels?.['io.mcp-agent.component'], `${svc}/api`);
    assert.equal(api.Labels?.['io.mcp-agent.agent'], node.agentId());
    assert.match(api.Labels?.['io.mcp-agent.spec-hash'] ?? '', /^[0-9a-f]{64}$/);
    st = await node.status();
    assert.deepEqual(st.summary, { 'in-sync': 2 });
    assert.equal(row(st, svc, 'api').last_event?.action, 'start');

    // a second pass changes nothing
    assert.match(await node.ok(['plan']), /nothing to do/);

    // removed behind the agent's back: status says so, a pass repairs it
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-api`]);
    st = await node.status();
    assert.equal(row(st, svc, 'api').drift, 'missing');
    assert.equal(row(st, svc, 'api').observed, 'absent');
    assert.equal(row(st, svc, 'worker').drift, 'in-sync');
    await node.ok(['run', '--once']);
    ps = await node.containers();
    const api2 = ps.find((c) => c.Names[0] === `${svc}-api`);
    assert.ok(api2 && api2.State === 'running');
    assert.notEqual(api2.Id, api.Id);

    // stopped behind its back: drift 'stopped', restarted (same container), restart counted
    await execa('podman', ['stop', '--time', '0', `${svc}-worker`]);
    st = await node.status();
    assert.equal(row(st, svc, 'worker').drift, 'stopped');
    assert.match(row(st, svc, 'worker').reason, /exited \(code \d+\)/);
    const workerId = ps.find((c) => c.Names[0] === `${svc}-worker`)!.Id;
    await node.ok(['run', '--once']);
    ps = await node.containers();
    const worker = ps.find((c) => c.Names[0] === `${svc}-worker`)!;
    assert.equal(worker.State, 'running');
    assert.equal(worker.Id, workerId, 'a stopped container is started again, not recreated');
    assert.equal(row(await node.status(), svc, 'worker').restarts, 1);

    // spec change: replaced, new hash, still exactly one container per component
    await node.apply(containerService(svc, { api: ['sleep', '1000000'], worker: SLEEP }));
    st = await node.status();
    assert.equal(row(st, svc, 'api').drift, 'spec-changed');
    assert.equal(row(st, svc, 'worker').drift, 'in-sync');
    await node.ok(['run', '--once']);
    ps = await node.containers();
    assert.equal(ps.length, 2);
    const api3 = ps.find((c) => c.Names[0] === `${svc}-api`)!;
    assert.notEqual(api3.Id, api2.Id);
    assert.notEqual(api3.Labels?.['io.mcp-agent.spec-hash'], api2.Labels?.['io.mcp-agent.spec-hash']);
    const inspect = JSON.parse((await execa('podman', ['inspect', api3.Id])).stdout) as Array<{ Config: { Cmd: string[] } }>;
    assert.deepEqual(inspect[0]!.Config.Cmd, ['sleep', '1000000']);
    assert.equal(ps.find((c) => c.Names[0] === `${svc}-worker`)!.Id, workerId, 'an unchanged component is left alone');

    // delete: orphans, then gone
    assert.match(await node.ok(['delete', svc]), /deleted/);
    st = await node.status();
    assert.deepEqual(st.summary, { orphan: 2 });
    await node.ok(['run', '--once']);
    assert.deepEqual(await node.containers(), []);
    assert.deepEqual((await node.status()).components, []);
  });

  it('an inactive service has its workloads stopped and removed', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { a: SLEEP }));
    await node.ok(['run', '--once']);
    assert.equal((await node.containers()).length, 1);
    await node.apply(`active = false\n${containerService(svc, { a: SLEEP })}`);
    assert.equal(row(await node.status(), svc, 'a').drift, 'orphan');
    await node.ok(['run', '--once']);
    assert.deepEqual(await node.containers(), []);
    const r = row(await node.status(), svc, 'a');
    assert.equal(r.drift, 'in-sync');
    assert.equal(r.desired, 'absent');
  });

  it('does not touch containers that do not carry its agent label', async (t) => {
    const node = new TestNode();
    const stranger = TestNode.serviceName('stranger');
    t.after(async () => {
      await execa('podman', ['rm', '--force', '--time', '0', stranger], { reject: false });
      await node.cleanup();
    });
    // A container with the component label of another agent (a foreign or second agent on the host)
    await execa('podman', ['run', '-d', ...PODMAN_FLAGS, '--name', stranger, '--label', 'io.mcp-agent.agent=someoneelse', '--label', `io.mcp-agent.component=${stranger}/x`, IMAGE, ...SLEEP]);
    await node.apply(containerService(TestNode.serviceName(), { a: SLEEP }));
    await node.ok(['run', '--once']);
    const st = await node.status();
    assert.equal(st.components.length, 1, 'only our component, no orphan row for the stranger');
    const { stdout } = await execa('podman', ['inspect', '--format', '{{.State.Status}}', stranger]);
    assert.equal(stdout.trim(), 'running');
  });

  it('never removes a container it does not manage that holds a wanted name', async (t) => {
    const node = new TestNode();
    const svc = TestNode.serviceName();
    t.after(async () => {
      await execa('podman', ['rm', '--force', '--time', '0', `${svc}-api`], { reject: false });
      await node.cleanup();
    });
    const foreign = (await execa('podman', ['run', '-d', ...PODMAN_FLAGS, '--name', `${svc}-api`, IMAGE, ...SLEEP])).stdout.trim();
    // A backoff longer than the test, so that status still shows it however slow the machine.
    const cfg = `${node.dir}/agent.toml`;
    writeFileSync(cfg, `db = "agent.db"\n[backoff]\nbase_ms = 600000\nmax_ms = 600000\n`);
    await node.apply(containerService(svc, { api: SLEEP }));
    const r = await node.cli(['run', '--once'], { env: { AGENT_CONFIG: cfg } });
    assert.equal(r.exitCode, 1, 'a failed action makes run --once exit 1');
    const { stdout } = await execa('podman', ['inspect', '--format', '{{.Id}} {{.State.Status}}', `${svc}-api`]);
    assert.equal(stdout.trim(), `${foreign} running`, 'the foreign container is untouched');
    const st = await node.status();
    const api = row(st, svc, 'api');
    assert.equal(api.drift, 'missing');
    assert.equal(api.last_event?.outcome, 'error');
    assert.match(api.last_event?.message ?? '', /taken by a container this agent does not manage/);
    assert.match(api.reason, /backing off until/);
  });

  it('a crash-looping component backs off exponentially, visible in status, without blocking others', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    const cfg = `${node.dir}/agent.toml`;
    await import('node:fs').then((fs) => fs.writeFileSync(cfg, `db = "agent.db"\n[backoff]\nbase_ms = 60000\nmax_ms = 600000\n`));
    const env = { AGENT_CONFIG: cfg };
    await node.apply(containerService(svc, { crashy: ['sh', '-c', 'exit 3'], steady: SLEEP }));
    await node.ok(['run', '--once'], { env });
    const crashed = await waitFor('crashy to exit', async () => (await node.containers()).find((c) => c.Names[0] === `${svc}-crashy` && c.State === 'exited'));
    assert.equal(crashed.ExitCode, 3);

    // first crash: restarted at once; the next restart waits for the backoff
    let st = await node.status();
    assert.equal(row(st, svc, 'crashy').drift, 'stopped');
    await node.ok(['run', '--once'], { env });
    await waitFor('crashy to exit again', async () => (await node.containers()).find((c) => c.Names[0] === `${svc}-crashy` && c.State === 'exited'));
    st = await node.status();
    const r = row(st, svc, 'crashy');
    assert.equal(r.restarts, 1);
    assert.ok(r.backoff_until, 'backoff_until is set');
    assert.ok(Date.parse(r.backoff_until) - Date.now() > 30_000, `backoff of about a minute, got ${r.backoff_until}`);
    assert.match(r.reason, /failed 1x, backing off until/);
    assert.equal(r.next_action, null);
    assert.equal(row(st, svc, 'steady').drift, 'in-sync');

    // while backing off, a pass does not restart it, but still repairs the other component
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-steady`]);
    await node.ok(['run', '--once'], { env });
    const ps = await node.containers();
    assert.equal(ps.find((c) => c.Names[0] === `${svc}-crashy`)?.State, 'exited');
    assert.equal(ps.find((c) => c.Names[0] === `${svc}-steady`)?.State, 'running');
    assert.equal(row(await node.status(), svc, 'crashy').restarts, 1);
  });

  it('restart policy never leaves an exited workload alone; on-failure restarts only a failure', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(
      containerService(svc, { once: ['true'], fails: ['sh', '-c', 'exit 1'], done: ['true'] }, { once: 'restart = "never"', fails: 'restart = "on-failure"', done: 'restart = "on-failure"' }),
    );
    await node.ok(['run', '--once']);
    await waitFor('all three to exit', async () => {
      const ps = await node.containers();
      return ps.length === 3 && ps.every((c) => c.State === 'exited');
    });
    const st = await node.status();
    assert.equal(row(st, svc, 'once').drift, 'exited');
    assert.equal(row(st, svc, 'once').next_action, null);
    assert.equal(row(st, svc, 'done').drift, 'exited');
    assert.equal(row(st, svc, 'fails').drift, 'stopped');
    assert.match(row(st, svc, 'fails').next_action ?? '', /^restart/);
  });
});
