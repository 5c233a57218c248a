// Node drain end to end: the real CLI, registry, podman and a QEMU/TCG guest. `agent drain` has the
// running agent stop three containers (SIGTERM, seen in their own logs) and a VM (ACPI powerdown,
// seen in its exit record) and start nothing while drained, across passes and across an agent
// killed with kill -9; `agent undrain` brings every one back, the same containers (logs kept), even
// under restart = "never" and "on-failure" with exit code 0.
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestNode, containerService, row, vmService, waitFor, SLEEP, VM_KERNEL, type StatusJson } from '../helpers/agent.js';

/** Exits 0 on SIGTERM after saying so: a graceful stop shows in the container's own log. */
const TERM_AWARE = ['sh', '-c', 'trap "echo drn-got-TERM; exit 0" TERM; echo drn-up; while true; do sleep 1; done'];

interface DrainStatus extends StatusJson {
  node: { drained: boolean; drained_since: string | null };
}
interface EventJson {
  action: string;
  reason: string;
  outcome: string;
  message: string;
  service: string | null;
  component: string | null;
}

const events = async (node: TestNode): Promise<EventJson[]> => JSON.parse(await node.ok(['events', '--json', '--limit', '500'])) as EventJson[];
const starts = (evs: EventJson[]): number => evs.filter((e) => ['start', 'restart', 'replace'].includes(e.action)).length;
const lastPass = async (node: TestNode): Promise<string | null> => ((await node.status()) as DrainStatus & { agent: { last_pass_at: string | null } }).agent.last_pass_at;

/** Waits until the agent has finished `n` more passes (each writes its heartbeat). */
async function passes(node: TestNode, n: number): Promise<void> {
  let seen = await lastPass(node);
  for (let i = 0; i < n; i++) {
    const before = seen;
    seen = await waitFor(`pass ${i + 1} of ${n}`, async () => {
      const at = await lastPass(node);
      return at !== null && at !== before ? at : undefined;
    }, 30_000, 200);
  }
}

describe('agent drain / undrain', () => {
  it('stops 3 containers and a VM gracefully, keeps them stopped across passes and a kill -9, and undrain brings them all back', async (t) => {
    const node = new TestNode({ AGENT_ACCEL: 'tcg' });
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName('drn');
    const vsvc = TestNode.serviceName('drn');
    await node.apply(containerService(svc, { never: TERM_AWARE, onf: TERM_AWARE, always: SLEEP }, { never: 'restart = "never"', onf: 'restart = "on-failure"' }), 'c.toml');
    await node.apply(vmService(vsvc, { vm: VM_KERNEL }), 'v.toml');
    const config = join(node.dir, 'drain.toml');
    // Two stops at a time; a grace long enough for the guest's acpid under TCG on a busy machine.
    writeFileSync(config, 'parallelism = 2\nstop_grace_seconds = 60\n');
    // A resync every second: passes keep coming while drained, so "nothing starts" is tested on many.
    const env = { AGENT_CONFIG: config, AGENT_RESYNC: '* * * * * *' };
    const first = node.startAgent(env);
    const all = [[svc, 'never'], [svc, 'onf'], [svc, 'always'], [vsvc, 'vm']] as const;
    await waitFor('all four in sync', async () => {
      const st = await node.status();
      return all.every(([s, c]) => row(st, s, c).drift === 'in-sync');
    }, 120_000, 250);
    const ids = new Map((await node.containers()).map((c) => [c.Names[0]!, c.Id]));

    const drained = await node.cli(['drain', '--deadline', '3m']);
    assert.equal(drained.exitCode, 0, `${drained.stdout}\n${drained.stderr}`);
    assert.match(drained.stdout, /^node drained at .*: the agent stops every workload/m);
    assert.match(drained.stdout, /^node drained after [\d.]+ s: none of its 4 workload\(s\) runs$/m);
    assert.match(drained.stderr, new RegExp(`${vsvc}/vm: stopped`), 'progress lines (not a terminal: plain lines)');

    // From the agent's API and computed live alike: the node and every component.
    for (const args of [['status', '--json'], ['status', '--json', '--live']]) {
      const st = JSON.parse(await node.ok(args)) as DrainStatus;
      assert.equal(st.node.drained, true, args.join(' '));
      for (const [s, c] of all) {
        const r = row(st, s, c);
        assert.deepEqual([r.observed, r.drift, r.reason, r.desired], ['exited', 'drained', 'stopped (drained)', 'running'], `${args.join(' ')} ${s}/${c}`);
      }
    }
    assert.match(await node.ok(['status']), /^node: +drained since /m);
    assert.match(await node.ok(['plan']), /^nothing to do: the node is drained/);
    // Graceful: the VM powered off through ACPI (its exit record), the containers got SIGTERM.
    const exit = JSON.parse(readFileSync(join(node.dir, 'vm', `${vsvc}-vm`, 'exit.json'), 'utf8')) as { reason: string; guest: boolean };
    assert.deepEqual([exit.reason, exit.guest], ['guest-shutdown', true]);
    const evs = await events(node);
    const stopOf = (s: string, c: string) => evs.find((e) => e.action === 'stop' && e.service === s && e.component === c);
    assert.match(stopOf(vsvc, 'vm')?.message ?? '', /^powered off \(ACPI powerdown\)/, JSON.stringify(evs));
    for (const c of ['never', 'onf']) {
      assert.match(await node.ok(['logs', `${svc}/${c}`]), /drn-got-TERM/);
      assert.equal(stopOf(svc, c)?.outcome, 'ok');
    }
    assert.ok((await node.containers()).every((c) => c.State === 'exited'));
    const startsDrained = starts(evs);

    // Passes while drained start nothing; nor does a new agent after a kill -9.
    await passes(node, 3);
    process.kill(first.pid!, 'SIGKILL');
    await first;
    const again = await node.cli(['drain', '--deadline', '10s']);
    assert.equal(again.exitCode, 0, `no agent and nothing running: drained all the same\n${again.stderr}`);
    assert.match(again.stdout, /^node already drained since /m);
    assert.match(again.stdout, /none of its 4 workload\(s\) runs \(no agent is running on this registry\)$/m);
    node.startAgent(env);
    await waitFor('the new agent', async () => (await node.status()).agent.running, 30_000, 200);
    await passes(node, 3);
    const held = (await node.status()) as DrainStatus;
    assert.equal(held.node.drained, true);
    assert.ok(all.every(([s, c]) => row(held, s, c).reason === 'stopped (drained)'), JSON.stringify(held.components));
    assert.equal(starts(await events(node)), startsDrained, 'nothing started while drained');
    assert.deepEqual(node.qemuProcesses(), []);

    const undrained = await node.ok(['undrain']);
    assert.match(undrained, /^node undrained \(drained since .*\): the agent starts its workloads again$/m);
    await waitFor('all four back in sync', async () => {
      const st = await node.status();
      return all.every(([s, c]) => row(st, s, c).drift === 'in-sync');
    }, 120_000, 250);
    const back = (await node.status()) as DrainStatus;
    assert.equal(back.node.drained, false);
    assert.ok(all.every(([s, c]) => row(back, s, c).restarts === 0), 'a drain is not a restart');
    assert.deepEqual(new Map((await node.containers()).map((c) => [c.Names[0]!, c.Id])), ids, 'the same containers, started again');
    const log = await node.ok(['logs', `${svc}/never`]);
    assert.equal(log.match(/drn-up/g)?.length, 2, `the log spans both runs: ${log}`);
    const restarted = (await events(node)).filter((e) => e.action === 'start' && e.reason === 'stopped by the drain, node undrained');
    assert.equal(restarted.length, 4, JSON.stringify(restarted));
    assert.equal(node.query<{ n: number }>("SELECT count(*) AS n FROM meta WHERE key LIKE 'drain%'")[0]!.n, 0, 'no drain rows left');
  });

  it('with no agent running: drain says nothing stops the running workloads (exit 1), a bad --deadline is refused (exit 2)', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('drn');
    await node.apply(containerService(svc, { api: SLEEP }));
    await node.ok(['run', '--once']);
    for (const bad of ['5', '0s', 'soon']) {
      const r = await node.cli(['drain', '--deadline', bad]);
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--deadline: must be a duration with a unit.*got '${bad}'`));
    }
    assert.equal((await node.status() as DrainStatus).node.drained, false, 'a refused drain records nothing');
    const noWait = await node.cli(['drain', '--no-wait']);
    assert.equal(noWait.exitCode, 0, noWait.stderr);
    assert.match(noWait.stdout, /^note: no agent is running on this registry: nothing stops the workloads until one runs/m);
    const since = /^node drained at (\S+):/m.exec(noWait.stdout)?.[1];
    assert.equal((await node.ok(['undrain'])).split('\n')[0], `node undrained (drained since ${since}): the agent starts its workloads again`);
    const r = await node.cli(['drain']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`no agent is running on this registry: nothing stops its 1 running workload\\(s\\) until one runs \\(agent run\\): ${svc}/api running`));
    assert.equal((await node.status() as DrainStatus).node.drained, true, 'recorded all the same');
    // A one-shot pass honours it too: it stops the workload and starts nothing.
    await node.ok(['run', '--once']);
    assert.equal((await node.containers())[0]?.State, 'exited');
    assert.match(await node.ok(['undrain']), /note: no agent is running on this registry: nothing starts until one runs/);
    await node.ok(['run', '--once']);
    assert.equal((await node.containers())[0]?.State, 'running');
    assert.equal(await node.ok(['undrain']), 'node was not drained: nothing changed');
  });
});
