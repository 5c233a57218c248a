// `agent doctor` on the real CLI and the real host: a healthy node passes (exit 0, every check
// named, a real throwaway container created, started and removed); a broken one (podman.binary
// nowhere, a registry that is not one) fails with the failing checks named and their fixes; a
// podman that hangs is cut off by its bound. No throwaway container stays behind in any case.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { CHECK_ORDER } from '../../src/doctor/report.js';
import { TestNode, VM_KERNEL, vmService } from '../helpers/agent.js';

interface DoctorJson {
  ok: boolean;
  summary: { ok: number; warn: number; fail: number };
  checks: Array<{ name: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix: string | null; facts: Record<string, unknown> }>;
}

function check(doc: DoctorJson, name: string): DoctorJson['checks'][number] {
  const c = doc.checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name} in ${JSON.stringify(doc.checks.map((x) => x.name))}`);
  return c;
}

/** A node with its own settings file: a bridge name no one else uses, so the bridge check is ours. */
function nodeWithConfig(toml: string): TestNode {
  const env: Record<string, string> = {};
  const node = new TestNode(env);
  const config = join(node.dir, 'agent.toml');
  writeFileSync(config, `[net]\nbridge = "drbr${randomBytes(3).toString('hex')}"\n\n${toml}`);
  env.AGENT_CONFIG = config;
  return node;
}

/** Containers (any state) by exact name. */
async function containersNamed(name: string): Promise<string[]> {
  const r = await execa('podman', ['ps', '-a', '--format', '{{.Names}}', '--filter', `name=^${name}$`]);
  return r.stdout.split('\n').filter(Boolean);
}

/** What podman's events file says happened to a container, in order (create, start, ..., remove). */
async function eventsOf(name: string): Promise<string[]> {
  const r = await execa('podman', ['events', '--stream=false', '--format', '{{.Status}}', '--filter', `container=${name}`]);
  return r.stdout.split('\n').filter(Boolean);
}

describe('agent doctor', () => {
  const nodes: TestNode[] = [];
  after(async () => {
    for (const n of nodes) await n.cleanup();
  });

  it('a healthy node: exit 0, every check named, a real container started and removed', async () => {
    const node = nodeWithConfig('');
    nodes.push(node);
    node.useGuestImages();
    await node.apply(vmService(TestNode.serviceName('dr'), { vm: VM_KERNEL }));

    const r = await node.cli(['doctor', '--json']);
    const doc = JSON.parse(r.stdout) as DoctorJson;
    assert.equal(r.exitCode, 0, `doctor failed:\n${r.stdout}\n${r.stderr}`);
    assert.equal(doc.ok, true);
    assert.deepEqual(doc.checks.map((c) => c.name), [...CHECK_ORDER], 'every check, in report order');
    for (const c of doc.checks) {
      assert.notEqual(c.status, 'fail', `${c.name}: ${c.detail}`);
      if (c.status === 'warn') assert.ok(c.fix, `${c.name} warns without a fix`);
    }
    for (const name of ['node', 'registry', 'podman', 'ulimits', 'qemu', 'net-tools', 'bridge', 'images', 'disk']) {
      assert.equal(check(doc, name).status, 'ok', `${name}: ${check(doc, name).detail}`);
    }
    assert.match(check(doc, 'images').detail, /1 VM/);
    assert.match(check(doc, 'bridge').detail, /absent: VMs with network auto use SLIRP/);
    // These machines do not boot with systemd: the check says so and passes (the systemd suite
    // checks a real unit: test/e2e/systemd-install.test.ts).
    assert.equal(check(doc, 'systemd').status, 'ok');
    assert.match(check(doc, 'systemd').detail, /not booted with systemd/);

    const container = String(check(doc, 'podman').facts.container);
    assert.match(container, /^agent-doctor-\d+-[0-9a-f]+$/);
    const events = await eventsOf(container);
    for (const e of ['create', 'start', 'remove']) assert.ok(events.includes(e), `podman saw no ${e} of ${container}: ${events.join(', ')}`);
    assert.deepEqual(await containersNamed(container), [], 'the throwaway container is gone');

    const table = await node.cli(['doctor']);
    assert.equal(table.exitCode, 0);
    assert.match(table.stdout, /^ok\s+podman\s+podman \S+, runtime runc: a throwaway container/m);
    assert.match(table.stdout, /\d+ ok, \d+ warnings?, 0 failed$/m);
  });

  it('a broken node: podman.binary nowhere and a registry that is not one fail (exit 1) with their fixes', async () => {
    const node = nodeWithConfig('[podman]\nbinary = "/nonexistent/podman"\n');
    nodes.push(node);
    writeFileSync(node.db, 'not a registry at all\n', { mode: 0o600 });

    const r = await node.cli(['doctor', '--json']);
    assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
    const doc = JSON.parse(r.stdout) as DoctorJson;
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.checks.map((c) => c.name), [...CHECK_ORDER], 'one failing check never hides the others');

    const podman = check(doc, 'podman');
    assert.equal(podman.status, 'fail');
    assert.match(podman.detail, /podman is not installed \(or not at the configured path\)/);
    assert.match(podman.fix ?? '', /set podman\.binary/);
    const registry = check(doc, 'registry');
    assert.equal(registry.status, 'fail');
    assert.match(registry.detail, /is not an agent registry: not an SQLite database/);
    assert.match(registry.fix ?? '', /restore the registry from a backup/);
    assert.equal(doc.summary.fail, 2, JSON.stringify(doc.checks.filter((c) => c.status === 'fail')));
    assert.equal(check(doc, 'node').status, 'ok');

    const container = String(podman.facts.container);
    assert.deepEqual(await containersNamed(container), []);
    assert.deepEqual(await eventsOf(container), [], 'no container was even created');

    const table = await node.cli(['doctor']);
    assert.equal(table.exitCode, 1);
    assert.match(table.stdout, /^FAIL\s+podman\s+/m);
    assert.match(table.stdout, /^\s+fix: install podman and runc \(scripts\/setup\), or set podman\.binary/m);
    assert.match(table.stdout, /2 failed \(exit 1\)$/m);
  });

  it('a bridge without its isolation rules fails (exit 1) naming agent net up; with them it is ok (in a namespace of its own)', async () => {
    const ns = `drns-${randomBytes(3).toString('hex')}`;
    await execa('ip', ['netns', 'add', ns]);
    try {
      const node = nodeWithConfig('');
      nodes.push(node);
      node.netns = ns;
      await node.ok(['net', 'up']);
      const healthy = JSON.parse((await node.cli(['doctor', '--json'])).stdout) as DoctorJson;
      const up = check(healthy, 'bridge');
      assert.equal(up.status, 'ok', up.detail);
      assert.match(up.detail, /present, up, 10\.99\.0\.1\/24; isolation rules in place/);

      await execa('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'mcp']);
      const r = await node.cli(['doctor', '--json']);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      const bare = check(JSON.parse(r.stdout) as DoctorJson, 'bridge');
      assert.equal(bare.status, 'fail');
      assert.match(bare.detail, /isolation rules not in place/);
      assert.equal(bare.fix, 'agent net up (loads the isolation rules again)');
    } finally {
      await execa('ip', ['netns', 'delete', ns], { reject: false });
    }
  });

  it('a podman that hangs is killed at its bound and reported; nothing of it stays', async () => {
    const node = nodeWithConfig('');
    nodes.push(node);
    const standIn = join(node.dir, 'hung-podman');
    writeFileSync(standIn, `#!/bin/bash\nexec -a ${standIn} sleep 100000\n`, { mode: 0o755 });
    writeFileSync(join(node.dir, 'agent.toml'), `${readFileSync(join(node.dir, 'agent.toml'), 'utf8')}[podman]\nbinary = "${standIn}"\nlist_timeout_seconds = 1\n`);

    const r = await node.cli(['doctor', '--json']);
    assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
    const podman = check(JSON.parse(r.stdout) as DoctorJson, 'podman');
    assert.equal(podman.status, 'fail');
    assert.match(podman.detail, /did not answer within 1 s \(killed\)/);
    const left = readdirSync('/proc').filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(standIn) && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
    assert.deepEqual(left, [], 'the hung podman was killed');
  });
});
