// observeVm on real state dirs (no QEMU): a fresh record with no pidfile is a launch under way,
// unless the launch got further (ready, or an exit record) and QEMU has ended since.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stateFiles } from '../../src/runtime/qemu/args.js';
import { observeVm } from '../../src/runtime/qemu/observe.js';
import type { VmRecord } from '../../src/runtime/qemu/state.js';

const root = mkdtempSync(join(tmpdir(), 'agent-qemu-observe-'));
after(() => rmSync(root, { recursive: true, force: true }));

function vmDir(name: string, files: { ready?: boolean; exit?: string } = {}): { dir: string; rec: VmRecord } {
  const dir = join(root, name);
  const rec: VmRecord = {
    agentId: 'a1', name, service: 'web', component: 'vm', specHash: 'h', sshHost: '127.0.0.1', sshPort: 1,
    netMode: 'slirp', hostKey: 'ssh-ed25519 AAAA', sshUser: 'root', address: '127.0.0.1:1', args: [],
    launchedAt: new Date().toISOString(),
  };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(stateFiles(dir).spec, JSON.stringify(rec));
  if (files.ready) writeFileSync(stateFiles(dir).ready, `${rec.launchedAt}\n`);
  if (files.exit) writeFileSync(stateFiles(dir).exit, files.exit);
  return { dir, rec };
}

describe('observeVm of a VM with no QEMU', () => {
  it('a fresh record alone: the launch is under way (starting)', async () => {
    const { dir, rec } = vmDir('web-vm1');
    assert.equal((await observeVm(dir, rec)).state, 'starting');
  });

  it('fresh, but it got to ready: QEMU ended since (exited), not "starting" for the launch window', async () => {
    const { dir, rec } = vmDir('web-vm2', { ready: true });
    const o = await observeVm(dir, rec);
    assert.equal(o.state, 'exited');
  });

  it('fresh, with the guest\'s own poweroff recorded: exited, and says why', async () => {
    const { dir, rec } = vmDir('web-vm3', { ready: true, exit: JSON.stringify({ reason: 'guest-shutdown', guest: true, at: new Date().toISOString() }) });
    const o = await observeVm(dir, rec);
    assert.equal(o.state, 'exited');
    assert.equal(o.exitCode, 0);
    assert.match(o.exitReason ?? '', /powered itself off/);
  });
});
