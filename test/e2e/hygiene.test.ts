// What an operator sees, through the real CLI, real SQLite, real QEMU: a row a master wrote that
// breaks apply's rules is shown invalid and never started; errors say what to do; the agent's
// QEMU processes are found by the names tools look for.
import { strict as assert } from 'node:assert';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { GUEST_IMAGES, TestNode, VM_KERNEL, row, vmService } from '../helpers/agent.js';

// TCG, whatever this machine's /dev/kvm claims (HOST-FACTS: KVM does not boot normal guests here).
const ENV = { AGENT_ACCEL: 'tcg' };

function events(node: TestNode, component: string): Array<{ action: string; outcome: string; message: string }> {
  const db = new Database(node.db, { readonly: true });
  try {
    return db.prepare('SELECT action, outcome, message FROM events WHERE component = ? ORDER BY id').all(component) as Array<{ action: string; outcome: string; message: string }>;
  } finally {
    db.close();
  }
}

describe('a row a master wrote is held to the rules of apply', () => {
  it("kernel = '/etc/passwd' written with sqlite3: invalid with the reason in status and plan; run starts nothing", async (t) => {
    const node = new TestNode(ENV);
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: VM_KERNEL }));
    // What apply refuses (a boot file outside the images directories), written by a master directly.
    await execa('sqlite3', [node.db, `UPDATE components SET kernel = '/etc/passwd' WHERE service = '${svc}' AND name = 'k'`]);

    const k = row(await node.status(), svc, 'k');
    assert.equal(k.drift, 'invalid', JSON.stringify(k));
    assert.match(k.reason, /kernel: must be inside an allowed image directory \(.*\/images\)/);
    assert.equal(k.next_action, null);
    const plan = JSON.parse(await node.ok(['plan', '--json'])) as { actions: unknown[] };
    assert.deepEqual(plan.actions, [], 'plan proposes nothing');

    const r = await node.cli(['run', '--once']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(node.qemuProcesses(), []);
    assert.deepEqual(events(node, 'k').filter((e) => e.action === 'start'), [], 'the events log has no start');
    assert.equal(row(await node.status(), svc, 'k').drift, 'invalid');
  });
});

describe('errors that say what to do', () => {
  it('a missing qemu.ssh_key is named before QEMU starts, with the setting and the fix', async (t) => {
    const node = new TestNode(ENV);
    t.after(() => node.cleanup());
    // The guest image without the agent's private key.
    const images = join(node.dir, 'images');
    mkdirSync(images);
    for (const f of ['vmlinux', 'initrd.gz', 'host_key.pub']) symlinkSync(join(GUEST_IMAGES, f), join(images, f));
    writeFileSync(join(node.dir, 'agent.toml'), 'db = "agent.db"\nbackoff = { base_ms = 600000, max_ms = 600000 }\n');
    const env = { AGENT_CONFIG: join(node.dir, 'agent.toml') };
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: VM_KERNEL }));
    const r = await node.cli(['run', '--once'], { env });
    assert.equal(r.exitCode, 1);
    const k = row(await node.status(), svc, 'k');
    const message = k.last_event?.message ?? '';
    assert.match(message, /no SSH key to reach the guest: .*\/images\/id_ed25519 is missing \(set qemu\.ssh_key/);
    assert.doesNotMatch(message, /ENOENT/);
    assert.deepEqual(node.qemuProcesses(), [], 'no QEMU was started');
  });

  it('unknown fields: each on its own, with a did-you-mean', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const file = join(node.dir, 'typo.toml');
    writeFileSync(file, `name = "web"\nruntime = "container"\nfoo = 1\nbar = 2\n[[components]]\nname = "a"\nimage = "x"\ncomand = ["sh"]\nmem = 64\n`);
    const r = await node.cli(['apply', '-f', file]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /^\s+foo: is not a known field$/m);
    assert.match(r.stderr, /^\s+bar: is not a known field$/m);
    assert.doesNotMatch(r.stderr, /foo\.bar|comand\.mem/);
    // (the per-component round runs once the service passes the first one)
    writeFileSync(file, `name = "web"\nruntime = "container"\n[[components]]\nname = "a"\nimage = "x"\ncomand = ["sh"]\nmem = 64\n`);
    const c = await node.cli(['apply', '-f', file]);
    assert.match(c.stderr, /components\[0\]\.comand: is not a known field \(did you mean `cmd`\?\)/);
    assert.match(c.stderr, /components\[0\]\.mem: is not a known field/);
  });

  it('YAML on stdin without --format: the error says how to pass it', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const r = await node.cli(['apply', '-f', '-'], { input: 'name: web\nruntime: container\ncomponents:\n  - name: a\n    image: x\n' });
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /is not valid TOML: .*pass --format yaml\|json for other formats/);
  });
});

describe("the agent's QEMU is found by QEMU's name", () => {
  it('pgrep -x qemu-system-x86 and ps -C qemu-system-x86_64 list a running VM; status still sees it', async (t) => {
    const node = new TestNode(ENV);
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: `${VM_KERNEL}\nnetwork = "slirp"` }));
    await node.ok(['run', '--once']);
    const pid = node.qemuPid(`${svc}-k`);
    assert.ok(pid, 'the VM has a pid');
    // comm is cut to 15 characters: pgrep -x needs the cut name; ps -C matches the full one.
    const pgrep = (await execa('pgrep', ['-x', 'qemu-system-x86'], { reject: false })).stdout.split('\n').map(Number);
    assert.ok(pgrep.includes(pid), `pgrep -x qemu-system-x86 lists ${pid}: ${pgrep.join(' ')}`);
    const ps = (await execa('ps', ['-C', 'qemu-system-x86_64', '-o', 'pid='], { reject: false })).stdout.split('\n').map(Number);
    assert.ok(ps.includes(pid), `ps -C qemu-system-x86_64 lists ${pid}: ${ps.join(' ')}`);
    // the agent's own identity check (argv) still knows it: in sync, and a second run adopts, not starts
    const k = row(await node.status(), svc, 'k');
    assert.deepEqual([k.drift, k.observed], ['in-sync', 'running'], JSON.stringify(k));
    await node.ok(['run', '--once']);
    assert.equal(node.qemuPid(`${svc}-k`), pid, 'the same QEMU');
    assert.deepEqual(node.qemuProcesses(), [pid]);
  });
});
