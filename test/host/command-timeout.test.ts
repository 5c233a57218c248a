// One podman call against a podman that never answers (a script whose child sleeps, holding the
// output pipe): the call fails within its bound with an error naming the command, and neither the
// script nor its child is left running. No VM, no real podman.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PodmanRuntime } from '../../src/runtime/podman.js';
import { CommandTimeoutError, abortCommands, commandsRunning, runBounded } from '../../src/runtime/command.js';
import { RuntimeObserver } from '../../src/agent/observe.js';

/**
 * A stand-in for a tool that hangs: a script whose child sleeps (a separate process holding the
 * output pipe). Both carry the script's directory in their argv, so a test finds what is left.
 */
function hangingTool(dir: string): string {
  const file = join(dir, 'podman');
  writeFileSync(file, `#!/bin/bash\n( exec -a ${dir}/child-sleep sleep 100000 )\n`, { mode: 0o755 });
  return file;
}

/** Processes whose command line carries the marker. */
function withMarker(marker: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

async function noneLeft(marker: string): Promise<number[]> {
  // A SIGKILLed process may stay a zombie for a moment (HOST-FACTS): give it a generous while.
  const deadline = Date.now() + 10_000;
  let left = withMarker(marker);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = withMarker(marker).filter((pid) => !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')));
  }
  return left;
}

describe('bounded external commands', () => {
  it('a podman listing that never answers fails within its bound, naming the command, and is killed with its child', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-hang-'));
    try {
      const binary = hangingTool(dir);
      const rt = new PodmanRuntime({ binary, ociRuntime: 'runc', ulimits: [], agentId: 'x', listTimeoutMs: 1000, changeTimeoutMs: 1000 });
      const listing = rt.list();
      // The child exists (so "none left" below means it was killed, not never started).
      while (withMarker(`${dir}/child-sleep`).length === 0) await new Promise((r) => setTimeout(r, 20));
      await assert.rejects(listing, (err: unknown) => {
        assert.ok(err instanceof CommandTimeoutError, String(err));
        assert.equal(err.runtime, 'podman');
        assert.equal(err.operation, 'list');
        assert.match(err.message, /^podman list: podman ps did not answer within 1 s \(killed\)$/);
        return true;
      });
      assert.equal(commandsRunning(), 0);
      // The script's own child (`sleep`, not exec'd) went with it: it was in the script's group.
      assert.deepEqual(await noneLeft(dir), []);
    } finally {
      killAll(withMarker(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stop is bounded by its grace period plus the change bound, and names the workload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-hang-'));
    try {
      const binary = hangingTool(dir);
      const rt = new PodmanRuntime({ binary, ociRuntime: 'runc', ulimits: [], agentId: 'x', listTimeoutMs: 300, changeTimeoutMs: 300 });
      await assert.rejects(rt.stop('web-api', 1), /^CommandTimeoutError: podman stop web-api: podman stop did not answer within 1\.3 s \(killed\)$/);
      assert.deepEqual(await noneLeft(dir), []);
    } finally {
      killAll(withMarker(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('abortCommands kills the reads under way at once; the caller learns why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-hang-'));
    try {
      const binary = hangingTool(dir);
      const read = runBounded(binary, ['ps'], { runtime: 'podman', operation: 'list', timeoutMs: 600_000, read: true });
      const change = runBounded(binary, ['run'], { runtime: 'podman', operation: 'run', workload: 'w', timeoutMs: 600_000 });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(abortCommands('the agent is stopping', { readsOnly: true }), 1);
      await assert.rejects(read, /podman ps was cut short: the agent is stopping \(killed\)/);
      assert.equal(commandsRunning(), 1);
      assert.equal(abortCommands('the agent is stopping'), 1);
      await assert.rejects(change, /podman run w: podman run was cut short/);
      assert.deepEqual(await noneLeft(dir), []);
    } finally {
      killAll(withMarker(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an observer asks a silent runtime once at a time and waits for it only briefly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-hang-'));
    try {
      const binary = hangingTool(dir);
      let calls = 0;
      const podman = new PodmanRuntime({ binary, ociRuntime: 'runc', ulimits: [], agentId: 'x', listTimeoutMs: 1500, changeTimeoutMs: 1500 });
      const counted = Object.assign(Object.create(podman) as PodmanRuntime, { list: () => (calls++, podman.list()) });
      const observer = new RuntimeObserver(new Map([['container', counted]]), { patienceMs: 100 });
      // First: waited for up to its bound, then unknown with the reason.
      const first = await observer.observeAll();
      assert.deepEqual(first.container, { ok: false, error: 'podman list: podman ps did not answer within 1.5 s (killed)' });
      // Then: a new listing starts, but a pass waits only its patience; a second pass joins the same listing.
      const second = await observer.observeAll();
      const third = await observer.observeAll();
      assert.equal(second.container?.ok, false);
      assert.match(third.container && !third.container.ok ? third.container.error : '', /did not answer within 1\.5 s.*the listing under way has waited/);
      assert.equal(calls, 2);
    } finally {
      abortCommands('test over');
      killAll(withMarker(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
