// Health checks end to end: real podman containers running busybox httpd, probed by a real
// `agent run` inside their own network namespaces (nsenter + curl / nc); a server killed inside
// its container (through `agent exec`) → unhealthy → restarted (restart always), or only reported
// (restart never); the start period honoured. Then a real QEMU/TCG guest whose exec check over the
// pinned SSH starts failing. Each test removes its containers and VMs (TestNode.cleanup).
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TestNode, containerService, row, vmService, waitFor, VM_KERNEL, type StatusJson } from '../helpers/agent.js';
import { parseExposition, sampleValue } from '../helpers/prom-text.js';

const NO_RESYNC = { AGENT_RESYNC: '0 0 0 1 1 *' };
/** httpd (daemonizes) on PORT serving "hi", then the shell sleeps: killing httpd leaves the container running. */
const serve = (port: number, delay = 0): string[] => ['sh', '-c', `${delay ? `sleep ${delay}; ` : ''}mkdir -p /tmp/www && echo hi > /tmp/www/index.html && httpd -p ${port} -h /tmp/www; exec sleep 2147483647`];
const check = (body: string): string => `[components.health]\n${body}`;

interface EventRow { component: string; action: string; reason: string; outcome: string; message: string }
const events = (node: TestNode, svc: string): EventRow[] => node.query<EventRow>('SELECT component, action, reason, outcome, message FROM events WHERE service = ? ORDER BY id', svc);

async function health(node: TestNode, svc: string, comp: string, want: string): Promise<StatusJson> {
  return waitFor(`${svc}/${comp} ${want}`, async () => {
    const st = await node.status();
    return row(st, svc, comp).health === want && st;
  }, 60_000, 250);
}

describe('health checks refused at apply', () => {
  it('names the field, exits 2 and leaves the registry unchanged', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('hr');
    await node.apply(containerService(svc, { web: serve(8080) }, { web: check('kind = "tcp"\nport = 8080') }));
    const before = node.query('SELECT * FROM components');
    const bad: Array<[string, RegExp]> = [
      [containerService(svc, { web: serve(8080) }, { web: check('kind = "tcp"\nport = 0') }), /components\[0\]\.health\.port.*between 1 and 65535/],
      [containerService(svc, { web: serve(8080) }, { web: check('kind = "smtp"\nport = 25') }), /components\[0\]\.health\.kind.*must be one of tcp, http, exec/],
      [containerService(svc, { web: serve(8080) }, { web: check('kind = "tcp"\nport = 8080\ninterval_seconds = 0') }), /components\[0\]\.health\.interval_seconds.*at least 1 s/],
      [vmService(svc, { g: `${VM_KERNEL}\n${check('kind = "http"\nport = 8080')}` }), /components\[0\]\.health\.port.*declared tcp ports/],
      // this node has no images dir: no host key to pin, so no SSH for an exec check
      [vmService(svc, { g: `${VM_KERNEL}\n${check('kind = "exec"\ncommand = ["true"]')}` }), /components\[0\]\.health\.kind.*exec runs over the VM's pinned SSH.*no SSH host key to pin/],
    ];
    for (const [manifest, rule] of bad) {
      const file = `${node.dir}/bad.toml`;
      writeFileSync(file, manifest);
      const r = await node.cli(['apply', '-f', file]);
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, rule);
    }
    assert.deepEqual(node.query('SELECT * FROM components'), before);
  });
});

describe('health checks on containers', () => {
  it('http and tcp checks in the namespace: a killed server makes it unhealthy, then it is restarted', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('hl');
    const fast = 'interval_seconds = 1\ntimeout_seconds = 1\nfailure_threshold = 2';
    await node.apply(containerService(svc, { web: serve(8080), raw: serve(9090) }, {
      web: check(`kind = "http"\nport = 8080\npath = "/index.html"\nexpected_status = [200, 200]\n${fast}`),
      raw: check(`kind = "tcp"\nport = 9090\n${fast}`),
    }));
    node.startAgent(NO_RESYNC);
    for (const c of ['web', 'raw']) await health(node, svc, c, 'healthy');
    // nothing was published: podman shows no port of either container
    for (const c of await node.containers()) assert.deepEqual((c as unknown as { Ports: unknown[] | null }).Ports ?? [], []);
    for (const c of ['web', 'raw']) await node.ok(['exec', `${svc}/${c}`, '--', 'killall', 'httpd']);
    await waitFor('both restarted after failing their checks', async () => {
      const ev = events(node, svc);
      return ['web', 'raw'].every((c) => ev.some((e) => e.component === c && e.action === 'restart' && e.outcome === 'ok' && /^unhealthy: /.test(e.reason))) && ev;
    }, 60_000, 250);
    const ev = events(node, svc);
    const down = ev.find((e) => e.component === 'web' && e.reason === 'healthy → unhealthy');
    assert.ok(down, JSON.stringify(ev));
    assert.equal(down.outcome, 'error');
    assert.match(down.message, /GET http:\/\/127\.0\.0\.1:8080\/index\.html.*(Failed to connect|Couldn't connect)/);
    assert.match(ev.find((e) => e.component === 'raw' && e.reason === 'healthy → unhealthy')?.message ?? '', /tcp 127\.0\.0\.1:9090.*(refused|failed)/);
    // the restart brought the server back: healthy again, one restart counted, the transition logged
    for (const c of ['web', 'raw']) {
      const st = await health(node, svc, c, 'healthy');
      assert.equal(row(st, svc, c).restarts, 1);
      assert.equal(row(st, svc, c).drift, 'in-sync');
    }
    assert.ok(events(node, svc).filter((e) => e.component === 'web' && e.reason === 'starting → healthy').length >= 2);
    const m = parseExposition((await node.api('/metrics')).body);
    assert.ok(sampleValue(m, 'mcp_agent_health_checks_total', { result: 'failure' }) >= 4);
    assert.ok(sampleValue(m, 'mcp_agent_health_checks_total', { result: 'success' }) >= 4);
    assert.equal(sampleValue(m, 'mcp_agent_unhealthy_workloads'), 0);
    // the registry's instances row holds the verdict
    const rows = node.query<{ health_status: string; health_run: string; handle: string }>('SELECT health_status, health_run, handle FROM instances WHERE service = ?', svc);
    assert.deepEqual(rows.map((r) => [r.health_status, r.health_run === r.handle]), [['healthy', true], ['healthy', true]]);
  });

  it('restart = never only reports; a start period keeps early failures from counting', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('hl');
    const http = 'kind = "http"\nport = 8080\ninterval_seconds = 1\ntimeout_seconds = 1\nfailure_threshold = 1';
    // `late` and `early` both start their server after 4 s; only `late` has a start period.
    await node.apply(containerService(svc, { never: serve(8080), late: serve(8080, 4), early: serve(8080, 4) }, {
      never: `restart = "never"\n${check(http)}`,
      late: `restart = "never"\n${check(`${http}\nstart_period_seconds = 30`)}`,
      early: `restart = "never"\n${check(http)}`,
    }));
    node.startAgent(NO_RESYNC);
    await health(node, svc, 'never', 'healthy');
    await node.ok(['exec', `${svc}/never`, '--', 'killall', 'httpd']);
    let st = await health(node, svc, 'never', 'unhealthy');
    const r = row(st, svc, 'never');
    assert.equal(r.drift, 'unhealthy');
    assert.equal(r.observed, 'running');
    assert.equal(r.next_action, null);
    assert.match(r.reason, /^unhealthy: http check failed \d+x: GET http:\/\/127\.0\.0\.1:8080\/ .*restart policy never leaves it running$/);
    st = await health(node, svc, 'late', 'healthy');
    // without a start period the same slow server was judged unhealthy before it listened
    assert.ok(events(node, svc).some((e) => e.component === 'early' && e.reason === 'starting → unhealthy'), JSON.stringify(events(node, svc)));
    assert.ok(!events(node, svc).some((e) => e.component === 'late' && /unhealthy/.test(e.reason)));
    // still running, never restarted, and `status --check`-style summary counts it
    st = await node.status();
    assert.equal(row(st, svc, 'never').restarts, 0);
    assert.equal(row(st, svc, 'never').observed, 'running');
    assert.ok(!events(node, svc).some((e) => e.action === 'restart'));
    assert.ok((st.summary.unhealthy ?? 0) >= 1);
    const table = await node.ok(['status']);
    assert.match(table, /HEALTH/);
    for (const l of table.split('\n')) assert.ok(l.length <= 120, l);
    const m = parseExposition((await node.api('/metrics')).body);
    assert.ok(sampleValue(m, 'mcp_agent_unhealthy_workloads') >= 1);
  });
});

describe('health checks on a VM', () => {
  it('an exec check over SSH that starts failing restarts the VM', async (t) => {
    const node = new TestNode({ AGENT_ACCEL: 'tcg' });
    node.useGuestImages();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('hv');
    // /etc/hostname is written by the guest's init at every boot.
    await node.apply(vmService(svc, { vm: `${VM_KERNEL}\n${check('kind = "exec"\ncommand = ["test", "-f", "/etc/hostname"]\ninterval_seconds = 1\ntimeout_seconds = 5\nfailure_threshold = 2')}` }));
    node.startAgent(NO_RESYNC);
    let st = await health(node, svc, 'vm', 'healthy');
    const pid = row(st, svc, 'vm').handle;
    await node.ok(['exec', `${svc}/vm`, '--', 'rm', '/etc/hostname']);
    await waitFor('the VM restarted for its failed check', async () => events(node, svc).some((e) => e.action === 'restart' && e.outcome === 'ok' && /^unhealthy: exec check failed 2x: exec test -f \/etc\/hostname exited 1/.test(e.reason)), 90_000, 250);
    st = await health(node, svc, 'vm', 'healthy');
    assert.notEqual(row(st, svc, 'vm').handle, pid, 'a new QEMU runs');
    assert.equal(row(st, svc, 'vm').restarts, 1);
    assert.ok(events(node, svc).some((e) => e.reason === 'healthy → unhealthy' && e.outcome === 'error'));
  });
});
