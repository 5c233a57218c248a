// Unikernel VMs end to end: real QEMU (TCG) booting the project's guest image, real SSH through
// the SLIRP forward on 127.0.0.1 with the pinned host key, the real CLI and registry.
import { strict as assert } from 'node:assert';
import { existsSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import Database from 'better-sqlite3';
import { preferredSshPort } from '../../src/agent/ports.js';
import { TestNode, containerService, row, waitFor, SLEEP, IMAGE } from '../helpers/agent.js';

const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };
// TCG, whatever this machine's /dev/kvm claims (HOST-FACTS: KVM does not boot normal guests here).
const ENV = { AGENT_ACCEL: 'tcg' };

function vmService(name: string, comps: Record<string, string>): string {
  let out = `name = "${name}"\nruntime = "unikernel"\n`;
  for (const [c, body] of Object.entries(comps)) out += `\n[[components]]\nname = "${c}"\nmemory = 128\n${body}\n`;
  return out;
}
const KERNEL = 'kernel = "vmlinux"\ninitrd = "initrd.gz"';
const DISK = 'image = "guest.img"';

function vmNode(): TestNode {
  const node = new TestNode(ENV);
  node.useGuestImages();
  return node;
}

function leases(node: TestNode): Array<{ value: string; service: string; component: string; purpose: string }> {
  const db = new Database(node.db, { readonly: true });
  try {
    return db.prepare('SELECT value, service, component, purpose FROM leases ORDER BY value').all() as Array<{ value: string; service: string; component: string; purpose: string }>;
  } finally {
    db.close();
  }
}

describe('unikernel VMs under QEMU', () => {
  it('boots a kernel VM and a disk-image VM, ssh into them, exec passes the exit code through', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: `${KERNEL}\ncmdline = "agent.test=1"`, d: DISK }));
    let st = await node.status();
    assert.equal(row(st, svc, 'k').drift, 'missing');
    await node.ok(['run', '--once']);
    st = await node.status();
    for (const c of ['k', 'd']) {
      const r = row(st, svc, c);
      assert.equal(r.drift, 'in-sync', JSON.stringify(r));
      assert.equal(r.observed, 'running');
      assert.match(r.address ?? '', /^127\.0\.0\.1:\d+$/);
    }
    // exec over ssh2 with the pinned key; stdout and the exit code pass through
    const r = await node.cli(['exec', `${svc}/k`, '--', 'sh', '-c', 'cat /proc/cmdline; echo to-stderr >&2; exit 7']);
    assert.equal(r.exitCode, 7, r.stderr);
    assert.match(r.stdout, /agent\.test=1/);
    assert.match(r.stderr, /to-stderr/);
    const d = await node.cli(['exec', `${svc}/d`, '--', 'cat', '/sys/class/dmi/id/sys_vendor']);
    assert.equal(d.exitCode, 0, d.stderr);
    // the disk image is never written: the VM boots an overlay in its state dir
    assert.ok(existsSync(join(node.dir, 'vm', `${svc}-d`, 'disk.qcow2')));
    // the plain OpenSSH client agrees, with the host key pinned through known_hosts
    const port = Number(row(st, svc, 'k').address!.split(':')[1]);
    const kh = join(node.dir, 'known_hosts');
    writeFileSync(kh, `[127.0.0.1]:${port} ${readFileSync(join(node.dir, 'images/host_key.pub'), 'utf8')}`);
    const ssh = await execa('ssh', ['-i', join(node.dir, 'images/id_ed25519'), '-p', String(port), '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', 'root@127.0.0.1', 'echo', 'via-openssh'], { reject: false });
    assert.equal(ssh.stdout.trim(), 'via-openssh', ssh.stderr);
    // the console log is readable
    const logs = await node.ok(['logs', `${svc}/k`]);
    assert.match(logs, /AGENT_GUEST_SSH_READY/);
  });

  it('refuses to talk to a guest whose host key is not the pinned one', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    // a valid key line that is not the guest's
    const other = (await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(node.dir, 'other'), '-C', 'x'])).exitCode === 0 ? readFileSync(join(node.dir, 'other.pub'), 'utf8').trim() : '';
    await node.apply(vmService(svc, { k: `${KERNEL}\nssh_host_key = "${other}"` }));
    const r = await node.cli(['run', '--once']);
    assert.equal(r.exitCode, 1);
    const st = await node.status();
    const k = row(st, svc, 'k');
    const vmDir = join(node.dir, 'vm', `${svc}-k`);
    const why = () => JSON.stringify({ row: k, run: r, vmDir: existsSync(vmDir) ? readdirSync(vmDir) : 'absent', spec: existsSync(join(vmDir, 'spec.json')) ? readFileSync(join(vmDir, 'spec.json'), 'utf8').slice(0, 400) : null, qemu: node.qemuProcesses() }, null, 1);
    assert.equal(k.drift, 'missing', why());
    assert.match(k.last_event?.message ?? '', /does not match the pinned key/);
    assert.deepEqual(node.qemuProcesses(), [], 'the VM that failed its check was not left running');
    assert.equal(existsSync(join(node.dir, 'vm', `${svc}-k`)), false, 'no state dir left behind');
    assert.deepEqual(leases(node), [], 'no lease left behind');
  });

  it('restarts a VM killed with kill -9 (noticed through QMP), keeping its port', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: KERNEL }));
    node.startAgent({ ...NO_RESYNC });
    await waitFor('the VM to run', async () => row(await node.status(), svc, 'k').drift === 'in-sync', 60_000, 250);
    const before = row(await node.status(), svc, 'k');
    const pid = node.qemuPid(`${svc}-k`)!;
    process.kill(pid, 'SIGKILL');
    await waitFor('a new QEMU', async () => {
      const p = node.qemuPid(`${svc}-k`);
      const r = row(await node.status(), svc, 'k');
      return p !== undefined && p !== pid && r.drift === 'in-sync' && r.restarts === 1;
    }, 60_000, 250);
    const after = row(await node.status(), svc, 'k');
    assert.equal(after.address, before.address, 'same SSH port after the restart');
    const events = JSON.parse(await node.ok(['events', '--json'])) as Array<{ action: string; reason: string }>;
    assert.ok(events.some((e) => e.action === 'restart' && /VM not running/.test(e.reason)), JSON.stringify(events));
  });

  it('restart on-failure: a guest that powers itself off stays off, and status says why; the record outlives the agent', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: `${KERNEL}\nrestart = "on-failure"` }));
    const agent = node.startAgent({ ...NO_RESYNC });
    await waitFor('the VM to run', async () => row(await node.status(), svc, 'k').drift === 'in-sync', 60_000, 250);
    const pid = node.qemuPid(`${svc}-k`)!;
    // The guest's own poweroff: the ssh session may be cut as the VM goes down.
    await node.cli(['exec', `${svc}/k`, '--', 'poweroff']);
    await waitFor('QEMU to exit', async () => node.qemuPid(`${svc}-k`) === undefined, 60_000, 250);
    const off = await waitFor('status to show the VM exited', async () => {
      const r = row(await node.status(), svc, 'k');
      return r.drift === 'exited' ? r : undefined;
    }, 30_000, 250);
    assert.match(off.reason, /the guest powered itself off/);
    assert.equal(off.next_action, null);
    // A failure would have been restarted at once (the first restart has no backoff): give the
    // running agent several wakes' worth of time, then check it left the VM off.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(node.qemuProcesses(), [], `no QEMU restarted (was pid ${pid})`);
    process.kill(agent.pid!, 'SIGTERM');
    await agent;
    await node.ok(['run', '--once']);
    const later = row(await node.status(), svc, 'k');
    assert.equal(later.drift, 'exited', 'another agent process reads the same reason from the state dir');
    assert.match(later.reason, /powered itself off/);
    assert.deepEqual(node.qemuProcesses(), []);
  });

  it('after kill -9 of the agent, a new agent adopts the VM: same QEMU pid', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: KERNEL }));
    const agent = node.startAgent({ ...NO_RESYNC });
    await waitFor('the VM to run', async () => row(await node.status(), svc, 'k').drift === 'in-sync', 60_000, 250);
    const pid = node.qemuPid(`${svc}-k`);
    process.kill(agent.pid!, 'SIGKILL');
    await agent;
    const again = node.startAgent({ ...NO_RESYNC });
    await waitFor('the new agent to pass', async () => (await node.status()).agent.pid === again.pid);
    assert.equal((await node.cli(['run', '--once'])).exitCode, 5, 'a second reconciler is refused while the new agent runs');
    assert.equal(node.qemuPid(`${svc}-k`), pid, 'same QEMU: adopted, not restarted');
    assert.deepEqual(node.qemuProcesses(), [pid], 'no duplicate VM');
    assert.match(await node.ok(['plan']), /nothing to do/);
  });

  it('delete stops the VM gracefully (ACPI powerdown) and frees its state dir and leases', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: KERNEL }));
    await node.ok(['run', '--once']);
    assert.equal(leases(node).length, 1);
    await node.ok(['delete', svc]);
    await node.ok(['run', '--once']);
    const events = JSON.parse(await node.ok(['events', '--json'])) as Array<{ action: string; outcome: string; message: string }>;
    const rm = events.find((e) => e.action === 'remove');
    assert.ok(rm, JSON.stringify(events));
    assert.equal(rm.outcome, 'ok');
    assert.match(rm.message, /powered off \(ACPI powerdown\)/);
    assert.deepEqual(node.qemuProcesses(), []);
    assert.equal(existsSync(join(node.dir, 'vm', `${svc}-k`)), false);
    assert.deepEqual(leases(node), []);
  });

  it('two VMs whose preferred SSH ports collide get distinct ports, stable across restarts', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    // find two component names of this service with the same preferred port
    const byPort = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const c = `c${i}`;
      const p = preferredSshPort(`${svc}-${c}`);
      const other = byPort.get(p);
      if (other) pair = [other, c];
      byPort.set(p, c);
    }
    const [a, b] = pair;
    const preferred = preferredSshPort(`${svc}-${a}`);
    await node.apply(vmService(svc, { [a]: KERNEL, [b]: KERNEL }));
    await node.ok(['run', '--once']);
    let st = await node.status();
    const pa = row(st, svc, a).address;
    const pb = row(st, svc, b).address;
    assert.ok(pa && pb && pa !== pb, `distinct: ${pa} ${pb}`);
    const ports = [pa, pb].map((x) => Number(x.split(':')[1])).sort();
    assert.equal(ports[0], preferred, 'one of them has the preferred port');
    assert.ok(ports[1]! > preferred, 'the other the next free one');
    // kill both, restart: same ports
    for (const c of [a, b]) process.kill(node.qemuPid(`${svc}-${c}`)!, 'SIGKILL');
    await waitFor('both gone', async () => node.qemuProcesses().length === 0, 10_000);
    await node.ok(['run', '--once']);
    st = await node.status();
    assert.equal(row(st, svc, a).address, pa);
    assert.equal(row(st, svc, b).address, pb);
    assert.equal(row(st, svc, a).restarts, 1);
  });

  it('a VM and a container side by side in one service', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    const manifest = `${vmService(svc, { vm: KERNEL })}\n[[components]]\nname = "ctr"\nruntime = "container"\nimage = "${IMAGE}"\ncmd = ${JSON.stringify(SLEEP)}\n`;
    await node.apply(manifest);
    await node.ok(['run', '--once']);
    const st = await node.status();
    assert.deepEqual(st.summary, { 'in-sync': 2 });
    assert.equal(row(st, svc, 'vm').runtime, 'unikernel');
    assert.equal(row(st, svc, 'ctr').runtime, 'container');
    assert.equal((await node.containers()).length, 1);
    assert.equal(node.qemuProcesses().length, 1);
    const e = await node.cli(['exec', `${svc}/ctr`, '--', 'sh', '-c', 'echo from-container; exit 4']);
    assert.equal(e.exitCode, 4);
    assert.match(e.stdout, /from-container/);
  });
});

describe('unikernel bad input and failures leave nothing behind', () => {
  it('refuses boot files outside the allowed image directories, with the field named', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    const cases: Array<[string, RegExp]> = [
      ['image = "/etc/passwd"', /components\[0\]\.image: must be inside an allowed image directory/],
      ['image = "../../etc/passwd"', /components\[0\]\.image: must not contain '\.\.'/],
      ['kernel = "vmlinux"', /components\[0\]\.initrd: is required with kernel/],
      [`${KERNEL}\nports = [{ guest = 80, host = 70000 }]`, /components\[0\]\.ports\[0\]\.host: must be between 1 and 65535/],
    ];
    for (const [body, re] of cases) {
      const file = join(node.dir, 'bad.toml');
      writeFileSync(file, vmService(svc, { k: body }));
      const r = await node.cli(['apply', '-f', file]);
      assert.equal(r.exitCode, 2, body);
      assert.match(r.stderr, re);
    }
    const noMem = join(node.dir, 'nomem.toml');
    writeFileSync(noMem, `name = "${svc}"\n[[components]]\nname = "k"\nruntime = "unikernel"\n${KERNEL}\n`);
    const r = await node.cli(['apply', '-f', noMem]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /components\[0\]\.memory: is required for unikernel components/);
    // Refused before the registry is opened: not even the file was created.
    assert.equal(existsSync(node.db), false, 'nothing was written');
  });

  it('without qemu, unikernel components are unknown with the reason, and nothing is started or leased', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(vmService(svc, { k: KERNEL }));
    const env = { AGENT_QEMU: '/nonexistent/qemu-system-x86_64' };
    const st = JSON.parse(await node.ok(['status', '--json'], { env })) as Awaited<ReturnType<TestNode['status']>>;
    assert.equal(row(st, svc, 'k').drift, 'unknown');
    assert.match(row(st, svc, 'k').reason, /qemu-system-x86_64 is not installed/);
    assert.equal((await node.cli(['run', '--once'], { env })).exitCode, 0);
    assert.deepEqual(node.qemuProcesses(), []);
    assert.deepEqual(leases(node), []);
  });

  it('an image that does not boot: status says so with the console tail; no QEMU, lease or state dir left', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    // A kernel that boots but an initrd that is garbage: the kernel panics, SSH never answers.
    // (and a backoff longer than the test, so that status still shows it however slow the machine)
    writeFileSync(join(node.dir, 'agent.toml'), `db = "agent.db"\nqemu = { boot_timeout_seconds = 15 }\nbackoff = { base_ms = 600000, max_ms = 600000 }\n`);
    const env = { AGENT_CONFIG: join(node.dir, 'agent.toml') };
    await node.apply(vmService(svc, { k: `kernel = "vmlinux"\ninitrd = "host_key.pub"` }));
    const r = await node.cli(['run', '--once'], { env });
    assert.equal(r.exitCode, 1);
    const k = row(JSON.parse(await node.ok(['status', '--json'], { env })) as Awaited<ReturnType<TestNode['status']>>, svc, 'k');
    assert.equal(k.drift, 'missing');
    assert.match(k.last_event?.message ?? '', /the VM exited while booting|SSH did not answer/);
    assert.match(k.last_event?.message ?? '', /console tail:\n[\s\S]*(Kernel panic|Linux version)/);
    assert.match(k.reason, /backing off/);
    assert.deepEqual(node.qemuProcesses(), []);
    assert.deepEqual(leases(node), []);
    assert.equal(existsSync(join(node.dir, 'vm', `${svc}-k`)), false);
  });

  it('image attestation: a mismatching image_sha256 is refused before boot, with the reason in status', async (t) => {
    const node = vmNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    // A long backoff, so that the fix below is tried only if a changed image_sha256 lifts it.
    writeFileSync(join(node.dir, 'agent.toml'), `db = "agent.db"\nbackoff = { base_ms = 600000, max_ms = 600000 }\n`);
    const env = { AGENT_CONFIG: join(node.dir, 'agent.toml') };
    await node.apply(vmService(svc, { d: `${DISK}\nimage_sha256 = "${'0'.repeat(64)}"` }));
    assert.equal((await node.cli(['run', '--once'], { env })).exitCode, 1);
    const d = row(await node.status(), svc, 'd');
    assert.match(d.last_event?.message ?? '', /image attestation failed: .*guest\.img has sha256 [0-9a-f]{64}, the component expects 0{64}/);
    assert.match(d.reason, /backing off/);
    assert.deepEqual(node.qemuProcesses(), []);
    // the right hash boots at once: the backoff held back only the spec that failed
    const good = (await execa('sha256sum', [join(node.dir, 'images/guest.img')])).stdout.split(' ')[0]!;
    await node.apply(vmService(svc, { d: `${DISK}\nimage_sha256 = "${good}"` }));
    const out = await node.ok(['run', '--once'], { env });
    const after = row(await node.status(), svc, 'd');
    assert.equal(after.drift, 'in-sync', JSON.stringify({ after, out }));
  });
});
