// The agent's helper processes, seen from /proc as an operator would: `nft monitor` and
// `ip monitor` run only while a VM could use the bridge, and every helper (podman events
// included) ends with its agent on kill -9, not a minute later. The VM part runs inside a network
// namespace this test creates (bridge, TAPs, QEMU, the agent itself): nothing leaves it.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { SLEEP, TestNode, containerService, row, vmService, waitFor } from '../helpers/agent.js';

/** Live (not zombie) processes whose environment carries this agent's MCP_AGENT_ID. */
function markedProcesses(agentId: string): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (!readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`MCP_AGENT_ID=${agentId}`)) continue;
      out.push({ pid: Number(p), cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') });
    } catch {
      /* gone */
    }
  }
  return out;
}

const monitors = (agentId: string) => markedProcesses(agentId).filter((p) => /^(nft monitor|ip -o monitor link)/.test(p.cmd));

/** kill -9 of the agent; then every helper it started must be gone long before the old 60 s window. */
async function killAndExpectNoHelpers(agent: { pid?: number | undefined }, agentId: string): Promise<void> {
  process.kill(agent.pid!, 'SIGKILL');
  await waitFor('no process with the killed agent\'s MCP_AGENT_ID', async () => markedProcesses(agentId).length === 0, 20_000);
}

describe('watcher processes', () => {
  it('a container-only agent runs no host-net monitors; kill -9 leaves no helper behind', async (t) => {
    const node = new TestNode({ AGENT_RESYNC: '0 0 0 1 1 *' });
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName();
    await node.apply(containerService(svc, { a: SLEEP }));
    const agent = node.startAgent();
    await waitFor('the container in sync', async () => row(await node.status(), svc, 'a').drift === 'in-sync', 60_000);
    const id = node.agentId();
    // podman's events are read from its events file (no process; the agent logs when it starts
    // reading), or else from a `podman events` stream that carries the marker; no nft or ip monitor runs
    await waitFor('podman events read', async () =>
      readFileSync(join(node.dir, 'agent.log'), 'utf8').includes('read from its events file') || markedProcesses(id).some((p) => /^podman events/.test(p.cmd)));
    assert.deepEqual(monitors(id), [], JSON.stringify(markedProcesses(id)));
    await killAndExpectNoHelpers(agent, id);
  });

  describe('with a VM that could use the bridge (inside a test namespace)', () => {
    const NS = `agw-${randomBytes(3).toString('hex')}`;
    // A resync every 2 s (a backoff ending also wakes the loop now: the requeue timer).
    const node = new TestNode({ AGENT_ACCEL: 'tcg', AGENT_RESYNC: '*/2 * * * * *' });
    after(async () => {
      await node.cleanup();
      await execa('ip', ['netns', 'del', NS], { reject: false });
    });

    it('monitors run; a failing VM start re-takes no lease; kill -9 leaves no helper behind', async () => {
      node.useGuestImages();
      await execa('ip', ['netns', 'add', NS]);
      await execa('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
      node.netns = NS;
      await node.ok(['net', 'up']);
      // A VM on the bridge whose start fails again and again: its initrd is garbage (the kernel
      // panics, SSH never answers), a short boot timeout and backoff make the failures quick.
      writeFileSync(join(node.dir, 'agent.toml'), 'db = "agent.db"\nqemu = { boot_timeout_seconds = 5 }\nbackoff = { base_ms = 500, max_ms = 1000 }\n');
      const env = { AGENT_CONFIG: join(node.dir, 'agent.toml') };
      const svc = TestNode.serviceName();
      await node.apply(vmService(svc, { k: 'kernel = "vmlinux"\ninitrd = "host_key.pub"\nnetwork = "bridge"' }));
      const agent = node.startAgent(env);
      const id = node.agentId();
      await waitFor('nft monitor and ip monitor of this agent', async () => monitors(id).length === 2, 30_000);

      const failedStarts = (): number => {
        const db = new Database(node.db, { readonly: true });
        try {
          return (db.prepare("SELECT count(*) AS n FROM events WHERE component = 'k' AND outcome = 'error'").get() as { n: number }).n;
        } finally {
          db.close();
        }
      };
      await waitFor('three failed starts', async () => failedStarts() >= 3, 180_000, 500);
      const log = readFileSync(join(node.dir, 'agent.log'), 'utf8');
      assert.doesNotMatch(log, /re-took the lease of a running VM/, 'no QEMU ran for it: no lease was re-taken for a "running VM"');

      await killAndExpectNoHelpers(agent, id);
    });
  });
});
