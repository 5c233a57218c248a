// The agent's local API (issue 10, items 1 and 3) on a real `agent run` with a real podman
// container: the socket (mode 0600, removed after SIGTERM, a stale one after kill -9 replaced),
// the routes through curl --unix-socket, `status`/`plan`/`events` answered by the agent and the
// same as --live apart from times, /healthz turning 503 when podman is made unusable, and the
// events stream. Service names start with "apx".
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import { PodmanSwitch, SLEEP, TestNode, containerService, row, waitFor, type StatusJson } from '../helpers/agent.js';

/** The fields that tell when something was seen (and the disk's free bytes, which move on their own). */
// started_at: a container the agent started carries its own stamp until the next full listing (docs/api.md).
const TIMES = new Set(['observed_at', 'age_seconds', 'observed_age_seconds', 'last_pass_at', 'free_bytes', 'started_at']);
const timeless = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(timeless) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => !TIMES.has(k)).map(([k, x]) => [k, timeless(x)])) : v;
/** A table with its relative times ("12s ago", an AGE of "12s") blanked and its column padding collapsed (a longer one widens a column). */
const ageless = (table: string): string => table.replace(/\b\d+[smhd]\b/g, 'N').replace(/ +/g, ' ').replace(/ +$/gm, '');

async function agentUp(node: TestNode, service: string): Promise<void> {
  await waitFor('the agent to answer on its socket', async () => (await node.api('/healthz')).status === 200, 30_000);
  await waitFor(`${service}/web running`, async () => row((JSON.parse((await node.api('/v1/status')).body) as StatusJson), service, 'web').observed === 'running', 30_000);
}

describe('local API', () => {
  describe('socket and documents', () => {
    const node = new TestNode();
    const svc = TestNode.serviceName('apx');
    let agent: ResultPromise;
    after(() => node.cleanup());

    before(async () => {
      await node.apply(containerService(svc, { web: SLEEP }));
      agent = node.startAgent();
      await agentUp(node, svc);
    });

    it('listens on <home>/agent.sock, a socket only its owner can use', () => {
      const st = statSync(node.socket);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
    });

    it('GET /v1/status: the status document from the live view, with each observation\'s time', async () => {
      const r = await node.api('/v1/status');
      assert.equal(r.status, 200);
      const s = JSON.parse(r.body) as StatusJson & { runtimes: Record<string, { observed_at: string | null; age_seconds: number | null }> };
      assert.equal(s.agent.running, true);
      const web = row(s, svc, 'web') as ReturnType<typeof row> & { observed_at: string | null; observed_age_seconds: number | null };
      assert.equal(web.drift, 'in-sync');
      assert.ok(web.observed_at && Date.parse(web.observed_at) <= Date.now(), `observed_at ${web.observed_at}`);
      assert.equal(typeof web.observed_age_seconds, 'number');
      assert.ok(s.runtimes.container?.observed_at, 'the container runtime says when it was listed');
      assert.equal(typeof s.runtimes.container?.age_seconds, 'number');
    });

    it('status, plan and events: the same from the agent as --live, apart from times', async () => {
      const [viaAgent, live] = [JSON.parse(await node.ok(['status', '--json'])) as unknown, JSON.parse(await node.ok(['status', '--json', '--live'])) as unknown];
      assert.deepEqual(timeless(viaAgent), timeless(live));
      assert.equal(ageless(await node.ok(['status'])), ageless(await node.ok(['status', '--live'])));
      assert.equal(await node.ok(['plan', '--json']), await node.ok(['plan', '--json', '--live']));
      assert.equal(await node.ok(['plan']), await node.ok(['plan', '--live']));
      assert.equal(await node.ok(['events', '--json', '-n', '5']), await node.ok(['events', '--json', '-n', '5', '--live']));
      assert.equal(await node.ok(['events', '-n', '5', '--service', svc]), await node.ok(['events', '-n', '5', '--service', svc, '--live']));
    });

    it('the CLI asks the agent: it shows the agent\'s view where a fresh listing could not be made', async () => {
      // This CLI call's own podman fails; the agent's does not.
      const env = { AGENT_PODMAN: '/bin/false' };
      const viaAgent = JSON.parse(await node.ok(['status', '--json'], { env })) as StatusJson;
      assert.equal(row(viaAgent, svc, 'web').observed, 'running');
      const live = JSON.parse(await node.ok(['status', '--json', '--live'], { env })) as StatusJson;
      assert.equal(row(live, svc, 'web').drift, 'unknown');
    });

    it('GET /v1/events?follow=1 streams a new event as it is written', async () => {
      const curl = execa('curl', ['-sN', '--unix-socket', node.socket, 'http://agent/v1/events?follow=1&limit=1'], { reject: false, buffer: true });
      try {
        let seen = '';
        curl.stdout?.on('data', (b: Buffer) => (seen += b.toString()));
        await waitFor('the backlog line', async () => seen.includes('\n'));
        await node.apply(containerService(svc, { web: SLEEP, api: SLEEP }));
        type Line = { id: number; component: string; action: string; outcome: string };
        const parsed = (): Line[] => seen.trim().split('\n').map((l) => JSON.parse(l) as Line);
        const lines = await waitFor('the start of the new component on the stream', async () => {
          const events = parsed();
          return events.some((e) => e.component === 'api' && e.action === 'start' && e.outcome === 'ok') && events;
        }, 30_000);
        // The agent's intent may be written and settled within one poll (a start through podman's
        // API can take less than 200 ms): then the stream has its settled row only. When it showed
        // the intent, the intent came first.
        const ok = lines.findIndex((e) => e.component === 'api' && e.action === 'start' && e.outcome === 'ok');
        const pending = lines.findIndex((e) => e.id === lines[ok]!.id && e.outcome === 'pending');
        assert.ok(pending < ok, 'an intent on the stream comes before its outcome');
        // A pending intent settled later is sent again, same id, with its outcome: written here as
        // another connection would (the agent's own writes are as above), so no race decides it.
        const db = new Database(node.db);
        try {
          const id = Number(db.prepare("INSERT INTO events (service, component, workload, action, reason, outcome, message) VALUES (?, 'probe', 'x', 'start', 'test', 'pending', 'intent')").run(svc).lastInsertRowid);
          await waitFor('the intent on the stream', async () => parsed().some((e) => e.id === id && e.outcome === 'pending'), 10_000);
          db.prepare("UPDATE events SET outcome = 'ok', message = 'settled' WHERE id = ?").run(id);
          await waitFor('the settled intent sent again', async () => parsed().some((e) => e.id === id && e.outcome === 'ok'), 10_000);
        } finally {
          db.close();
        }
      } finally {
        curl.kill('SIGTERM');
        await curl;
      }
    });

    it('agent events --follow prints new events from the agent', async () => {
      const follow = node.spawnCli(['events', '--follow', '--json', '-n', '1', '--service', svc], {}, 'follow');
      try {
        const printed = (): Array<{ action: string }> => readFileSync(join(node.dir, 'follow.out'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string });
        // The backlog (the newest event of the service) shows it is connected.
        await waitFor('the follower to print its backlog', async () => printed().length > 0);
        await node.ok(['delete', svc]);
        await waitFor('a remove event on the follower', async () => printed().some((e) => e.action === 'remove'), 30_000);
      } finally {
        follow.kill('SIGINT');
        const r = await follow;
        assert.equal(r.exitCode, 0, 'an interrupted follower ends quietly');
      }
    });

    it('answers 404, 405 and 400 with a JSON body that says why', async () => {
      const nf = await node.api('/v2/nothing');
      assert.equal(nf.status, 404);
      assert.match((JSON.parse(nf.body) as { error: string }).error, /no route \/v2\/nothing/);
      const na = await node.api('/v1/status', 'POST');
      assert.equal(na.status, 405);
      assert.match((JSON.parse(na.body) as { error: string }).error, /only GET/);
      const bad = await node.api('/v1/events?limit=many');
      assert.equal(bad.status, 400);
      assert.deepEqual(JSON.parse(bad.body), { error: "query parameter 'limit' must be a whole number from 1 to 100000, got 'many'", parameter: 'limit' });
      assert.equal((await node.api('/v1/status?x=1')).status, 400);
      const m = await node.api('/metrics');
      assert.equal(m.status, 200, 'the socket serves the same metrics as metrics_listen');
      assert.match(m.body, /^mcp_agent_runtime_up\{runtime="container"\} 1$/m);
    });

    it('removes its socket when stopped with SIGTERM; then the CLI computes live, and --follow says no agent runs', async () => {
      process.kill(agent.pid!, 'SIGTERM');
      const r = await agent;
      assert.equal(r.exitCode, 0);
      assert.equal(existsSync(node.socket), false, 'the socket is gone');
      const s = JSON.parse(await node.ok(['status', '--json'])) as StatusJson;
      assert.equal(s.agent.running, false);
      const f = await node.cli(['events', '--follow']);
      assert.equal(f.exitCode, 1);
      assert.match(f.stderr, /no running agent answers on .*agent\.sock: --follow needs `agent run`/);
    });
  });

  it('a socket left by an agent killed with SIGKILL is replaced by the next agent', async () => {
    const node = new TestNode();
    try {
      const svc = TestNode.serviceName('apx');
      await node.apply(containerService(svc, { web: SLEEP }));
      const first = node.startAgent();
      await agentUp(node, svc);
      process.kill(first.pid!, 'SIGKILL');
      await first;
      assert.ok(statSync(node.socket).isSocket(), 'the socket file stays behind');
      // Nobody answers on it: the CLI computes live, silently.
      const s = JSON.parse(await node.ok(['status', '--json'])) as StatusJson;
      assert.equal(row(s, svc, 'web').observed, 'running');
      const second = node.startAgent();
      await agentUp(node, svc);
      const st = JSON.parse((await node.api('/v1/status')).body) as StatusJson;
      assert.equal(st.agent.pid, second.pid);
      assert.equal(statSync(node.socket).mode & 0o777, 0o600);
    } finally {
      await node.cleanup();
    }
  });

  it('/healthz turns 503 naming the container runtime when podman is made unusable, and 200 again once it works', async () => {
    const node = new TestNode();
    try {
      const podman = new PodmanSwitch(node.dir);
      // The CLI path only (podman.api off: the REST service would keep answering), resyncs every second.
      const config = join(node.dir, 'agent.toml');
      writeFileSync(config, `resync = "* * * * * *"\n[podman]\nbinary = "${podman.path}"\napi = "off"\n`);
      const svc = TestNode.serviceName('apx');
      await node.apply(containerService(svc, { web: SLEEP }));
      node.startAgent({ AGENT_CONFIG: config });
      await agentUp(node, svc);
      podman.break();
      const down = await waitFor('a 503', async () => {
        const r = await node.api('/healthz');
        return r.status === 503 && (JSON.parse(r.body) as { problems: string[] });
      }, 30_000);
      assert.ok(down.problems.some((p) => /^the container runtime does not list: .*podman made unusable by the test/.test(p)), down.problems.join('; '));
      podman.mend();
      await waitFor('a 200 again', async () => (await node.api('/healthz')).status === 200, 30_000);
    } finally {
      await node.cleanup();
    }
  });
});
