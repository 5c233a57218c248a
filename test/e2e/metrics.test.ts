// Prometheus metrics of a real `agent run` with a real podman container, scraped with curl over
// TCP (metrics_listen on port 0: the agent logs the port it got) and read with a strict parser of
// the exposition format: the container in sync, its start counted, a `podman kill` counted as a
// restart with one more reaction, the container runtime up, 404 elsewhere. A second agent given
// the same address logs an error naming metrics_listen and reconciles on; a stopped agent frees
// the port. A real VM (QEMU under TCG, SLIRP on 127.0.0.1) boots: one boot observed.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { SLEEP, TestNode, VM_KERNEL, containerService, vmService, waitFor } from '../helpers/agent.js';
import { parseExposition, sampleValue, type Family } from '../helpers/prom-text.js';

interface LogLine {
  level: number;
  msg: string;
  address?: string;
  metrics_listen?: string;
}

const logLines = (node: TestNode): LogLine[] =>
  readFileSync(join(node.dir, 'agent.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** The address the agent's metrics listener bound, from its log line. */
const boundAddress = (node: TestNode): string | undefined => logLines(node).find((l) => /^serving Prometheus metrics/.test(l.msg))?.address;

/** GET with curl: status, content type and body. */
async function curl(url: string): Promise<{ code: number; contentType: string; body: string; exitCode: number }> {
  const r = await execa('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code} %{content_type}', url], { reject: false });
  const out = String(r.stdout);
  const cut = out.lastIndexOf('\n');
  const [code, ...type] = out.slice(cut + 1).split(' ');
  return { code: Number(code), contentType: type.join(' '), body: out.slice(0, cut), exitCode: r.exitCode ?? -1 };
}

async function scrape(address: string): Promise<Map<string, Family>> {
  const r = await curl(`http://${address}/metrics`);
  assert.equal(r.code, 200, r.body);
  assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.body);
}

describe('metrics over TCP', () => {
  it('a real agent: in-sync gauge, start counted, a kill counted as a restart with its reaction, runtime up', async (t) => {
    const node = new TestNode({ AGENT_RESYNC: '0 0 0 1 1 *' });
    const second = new TestNode({ AGENT_RESYNC: '0 0 0 1 1 *' });
    t.after(async () => {
      await second.cleanup();
      await node.cleanup();
    });
    const svc = TestNode.serviceName('mx');
    const workload = `${svc}-a`;
    await node.apply(containerService(svc, { a: SLEEP }));
    const agent = node.startAgent({ AGENT_METRICS_LISTEN: '127.0.0.1:0' });
    const address = await waitFor('the metrics listener', async () => boundAddress(node));
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(address, '127.0.0.1:0', 'the port the kernel picked is logged');

    let f = await waitFor('the container in sync', async () => {
      const m = await scrape(address);
      return sampleValue(m, 'mcp_agent_workloads', { runtime: 'container', drift: 'in-sync' }) === 1 && m;
    });
    assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'start', outcome: 'ok' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'start', outcome: 'failed' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_runtime_up', { runtime: 'container' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_workloads', { runtime: 'container', drift: 'missing' }), 0);
    assert.equal(sampleValue(f, 'mcp_agent_backoff_workloads'), 0);
    assert.ok(sampleValue(f, 'mcp_agent_reconcile_duration_seconds_count') >= 1);
    assert.ok(sampleValue(f, 'mcp_agent_last_pass_timestamp_seconds') > 0);
    assert.ok(sampleValue(f, 'process_resident_memory_bytes') > 0, 'the default process metrics');
    const restarts = sampleValue(f, 'mcp_agent_restarts_total', { runtime: 'container' });
    const reactions = sampleValue(f, 'mcp_agent_reaction_seconds_count');
    assert.equal(restarts, 0);
    assert.ok(reactions >= 1, 'the start reacted to the agent start');

    await execa('podman', ['kill', workload]);
    f = await waitFor('the restart counted', async () => {
      const m = await scrape(address);
      return sampleValue(m, 'mcp_agent_restarts_total', { runtime: 'container' }) === restarts + 1 && m;
    });
    assert.ok(sampleValue(f, 'mcp_agent_reaction_seconds_count') > reactions, 'the restart reacted to the death');
    assert.equal(sampleValue(f, 'mcp_agent_actions_total', { action: 'restart', outcome: 'ok' }), 1);
    assert.equal(sampleValue(f, 'mcp_agent_reaction_seconds_bucket', { le: '+Inf' }), sampleValue(f, 'mcp_agent_reaction_seconds_count'));
    await waitFor('in sync again', async () => sampleValue(await scrape(address), 'mcp_agent_workloads', { runtime: 'container', drift: 'in-sync' }) === 1);

    const other = await curl(`http://${address}/status`);
    assert.equal(other.code, 404);

    // Another agent told to use the same address: an error naming the setting, and it reconciles on.
    const svc2 = TestNode.serviceName('mx');
    await second.apply(containerService(svc2, { b: SLEEP }));
    const agent2 = second.startAgent({ AGENT_METRICS_LISTEN: address });
    const clash = await waitFor('the address clash logged', async () => logLines(second).find((l) => l.level === 50 && l.metrics_listen === address));
    assert.match(clash.msg, /^metrics_listen: 127\.0\.0\.1:\d+ is in use .*the agent runs on without metrics over TCP/);
    await waitFor('the second agent reconciles anyway', async () => (await second.status()).components.some((c) => c.workload === `${svc2}-b` && c.drift === 'in-sync'));
    assert.equal(agent2.exitCode, null, 'still running');
    agent2.kill('SIGTERM');
    assert.equal((await agent2).exitCode, 0);

    agent.kill('SIGTERM');
    assert.equal((await agent).exitCode, 0);
    const gone = await curl(`http://${address}/metrics`);
    assert.equal(gone.exitCode, 7, `nothing listens after stop (curl: couldn't connect): ${gone.body}`);
  });

  it('a VM boot is observed: launch to SSH ready', async (t) => {
    // TCG, whatever /dev/kvm claims (HOST-FACTS); SLIRP, so nothing leaves loopback.
    const node = new TestNode({ AGENT_RESYNC: '0 0 0 1 1 *', AGENT_ACCEL: 'tcg' });
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName('mx');
    await node.apply(vmService(svc, { v: `${VM_KERNEL}\nnetwork = "slirp"` }));
    const began = Date.now();
    const agent = node.startAgent({ AGENT_METRICS_LISTEN: '127.0.0.1:0' });
    const address = await waitFor('the metrics listener', async () => boundAddress(node));
    const f = await waitFor(
      'the VM in sync',
      async () => {
        const m = await scrape(address);
        return sampleValue(m, 'mcp_agent_workloads', { runtime: 'unikernel', drift: 'in-sync' }) === 1 && m;
      },
      120_000,
      250,
    );
    assert.equal(sampleValue(f, 'mcp_agent_vm_boot_seconds_count'), 1);
    // In seconds, and within what the test itself saw (the agent started, then the VM was in sync).
    const boot = sampleValue(f, 'mcp_agent_vm_boot_seconds_sum');
    const seen = (Date.now() - began) / 1000;
    assert.ok(boot > 0 && boot < seen, `boot ${boot} s, seen by the test within ${seen} s`);
    assert.equal(sampleValue(f, 'mcp_agent_leases', { kind: 'host_port' }), 1, 'the SSH forward');
    assert.equal(sampleValue(f, 'mcp_agent_runtime_up', { runtime: 'unikernel' }), 1);
    agent.kill('SIGTERM');
    assert.equal((await agent).exitCode, 0);
  });
});
