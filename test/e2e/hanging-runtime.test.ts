// A podman that never answers (a stand-in script that execs `sleep`, given as AGENT_PODMAN) next
// to a real VM under QEMU: the CLI still answers with the containers `unknown`, VMs are still
// started and restarted, and SIGTERM still stops `agent run`, leaving no stand-in process behind.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestNode, IMAGE, row, waitFor, type StatusJson } from '../helpers/agent.js';

const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };

/**
 * A node whose podman hangs: the stand-in's argv[0] carries the node's directory, so what is left
 * of it is found by that marker. A short listing bound keeps each CLI call quick.
 */
function hangingPodmanNode(): TestNode {
  const env: Record<string, string> = { AGENT_ACCEL: 'tcg' };
  const node = new TestNode(env);
  // The paths live in the node's own directory, known once it exists: the env is filled in after.
  const standIn = join(node.dir, 'hung-podman');
  writeFileSync(standIn, `#!/bin/bash\nexec -a ${standIn} sleep 100000\n`, { mode: 0o755 });
  const config = join(node.dir, 'agent.toml');
  writeFileSync(config, '[podman]\nlist_timeout_seconds = 2\ntimeout_seconds = 5\n');
  Object.assign(env, { AGENT_PODMAN: standIn, AGENT_CONFIG: config });
  node.useGuestImages();
  return node;
}

/** Live (not zombie) processes whose argv carries the stand-in's path. */
function standInProcesses(node: TestNode): number[] {
  const marker = join(node.dir, 'hung-podman');
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker) && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'))) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function killStandIns(node: TestNode): void {
  for (const pid of standInProcesses(node)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function mixedService(name: string): string {
  return [
    `name = "${name}"`,
    '',
    '[[components]]',
    'name = "c"',
    'runtime = "container"',
    `image = "${IMAGE}"`,
    'cmd = ["sleep", "3600"]',
    '',
    '[[components]]',
    'name = "vm"',
    'runtime = "unikernel"',
    'memory = 128',
    'kernel = "vmlinux"',
    'initrd = "initrd.gz"',
    '',
  ].join('\n');
}

async function statusJson(node: TestNode): Promise<StatusJson> {
  return JSON.parse(await node.ok(['status', '--json'])) as StatusJson;
}

describe('a container runtime that hangs', () => {
  it('status and plan answer with the containers unknown; run --once still starts the VM', async (t) => {
    const node = hangingPodmanNode();
    t.after(async () => {
      killStandIns(node);
      await node.cleanup();
    });
    const svc = TestNode.serviceName();
    await node.apply(mixedService(svc));

    let st = await statusJson(node);
    assert.equal(row(st, svc, 'c').drift, 'unknown');
    assert.match(row(st, svc, 'c').reason, /podman ps did not answer within 2 s/);
    assert.equal(st.runtimes.container?.ok, false);
    assert.equal(row(st, svc, 'vm').drift, 'missing', 'the VM runtime is assessed as usual');
    const plan = JSON.parse(await node.ok(['plan', '--json'])) as { actions: Array<{ type: string; workload: string }> };
    assert.deepEqual(plan.actions.map((a) => `${a.type} ${a.workload}`), [`start ${svc}-vm`]);

    // Like a missing QEMU: the pass did what it could (exit 0), and the log says what it could not.
    const once = await node.cli(['run', '--once']);
    assert.equal(once.exitCode, 0, once.stderr);
    assert.match(once.stderr, /the container runtime could not list: its components are unknown and left alone/);
    st = await statusJson(node);
    assert.equal(row(st, svc, 'vm').drift, 'in-sync', JSON.stringify(row(st, svc, 'vm')));
    assert.equal(row(st, svc, 'c').drift, 'unknown');
    assert.deepEqual(standInProcesses(node), [], 'every stand-in podman was killed');
  });

  it('under agent run: a VM killed with kill -9 comes back, and SIGTERM stops the agent with no stand-in left', async (t) => {
    const node = hangingPodmanNode();
    t.after(async () => {
      killStandIns(node);
      await node.cleanup();
    });
    const svc = TestNode.serviceName();
    await node.apply(mixedService(svc));
    const agent = node.startAgent({ ...NO_RESYNC });
    const vm = `${svc}-vm`;
    await waitFor('the VM to run', async () => row(await statusJson(node), svc, 'vm').drift === 'in-sync', 90_000, 500);

    const old = node.qemuPid(vm)!;
    process.kill(old, 'SIGKILL');
    const killedAt = Date.now();
    // A condition with a deadline well under the 40 s this took while each pass waited on podman.
    const fresh = await waitFor('a new QEMU for the VM', async () => node.qemuProcesses().find((p) => p !== old), 20_000, 100);
    t.diagnostic(`new QEMU ${fresh} ${Date.now() - killedAt} ms after kill -9 of ${old}, podman hanging`);

    // SIGTERM while podman hangs (the agent keeps asking it): the agent exits, and takes every
    // stand-in it started with it.
    process.kill(agent.pid!, 'SIGTERM');
    const ended = await Promise.race([agent, new Promise<undefined>((r) => setTimeout(r, 60_000))]);
    assert.ok(ended, 'agent run ended after SIGTERM');
    assert.equal(ended.exitCode, 0, readFileSync(join(node.dir, 'agent.log'), 'utf8').slice(-2000));
    const left = await waitFor('no stand-in podman left', async () => standInProcesses(node).length === 0, 10_000, 100).catch(() => false);
    assert.ok(left, `stand-in processes left: ${standInProcesses(node).join(' ')}`);
  });
});
