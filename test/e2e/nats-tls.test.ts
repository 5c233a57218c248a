// NATS over TLS, both ends, against a real nats-server that speaks only TLS and verifies clients'
// certificates (a throwaway CA made with openssl; everything on 127.0.0.1): the master's
// `fleet … --nats-ca/--nats-cert/--nats-key`, the agent's `source.nats.tls`, and what each says
// when its TLS is missing or wrong. No workload runs: an agent with nothing desired still reports.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { BIN, IMAGE, TestNode, waitFor, type CliResult } from '../helpers/agent.js';
import { makeTestCerts, NatsServer, TestMaster, type TestCerts } from '../helpers/nats-server.js';

const BUCKET = 'nats-tls-test';

describe('NATS over TLS: the master and the agent', () => {
  let dir: string;
  let certs: TestCerts;
  let server: NatsServer;
  let inv: string;
  let desired: string;

  const fleet = async (args: string[]): Promise<CliResult> => {
    const r = await execa('node', [BIN, 'fleet', ...args], { reject: false, stdin: 'ignore', env: { AGENT_LOG_LEVEL: 'warn' }, timeout: 60_000 });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const tlsFlags = (): string[] => ['--nats-ca', certs.ca, '--nats-cert', certs.clientCert, '--nats-key', certs.clientKey];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-e2e-nats-tls-'));
    certs = await makeTestCerts(dir);
    server = await NatsServer.start({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, verify: true } });
    inv = join(dir, 'inventory.toml');
    writeFileSync(inv, '[[nodes]]\nname = "tls1"\n');
    desired = join(dir, 'desired');
    mkdirSync(desired);
    writeFileSync(join(desired, 'web.toml'), `name = "tlsweb"\nnodes = ["tls1"]\n[[components]]\nname = "c"\nruntime = "container"\nimage = "${IMAGE}"\ncmd = ["sleep", "600"]\n`);
  });
  after(async () => {
    await server?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fleet apply and status reach a TLS server with the CA and a client certificate; without them they cannot', async () => {
    const plain = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv]);
    assert.equal(plain.exitCode, 1, plain.stdout);
    assert.match(plain.stderr, /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: .*check --nats, the TLS flags/);

    const noClientCert = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--nats-ca', certs.ca]);
    assert.equal(noClientCert.exitCode, 1, 'the server verifies clients: the CA alone is not enough');

    const applied = await fleet(['apply', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '-f', desired, ...tlsFlags()]);
    assert.equal(applied.exitCode, 0, applied.stderr);
    assert.match(applied.stdout, /^tls1: ok created 1/m);

    const master = await TestMaster.open([server.url], BUCKET, { create: false, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } });
    try {
      const e = await master.kv.get('desired.tls1.tlsweb');
      assert.equal(e?.operation, 'PUT');
      assert.equal((e?.json() as { name: string }).name, 'tlsweb');
    } finally {
      await master.close();
    }
    const status = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, ...tlsFlags()]);
    assert.match(status.stdout, /tls1 +never reported/i, status.stdout + status.stderr);
  });

  it('bad TLS flags are refused before any connection, naming the flag (exit 2)', async () => {
    const base = ['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv];
    const alone = await fleet([...base, '--nats-cert', certs.clientCert]);
    assert.equal(alone.exitCode, 2);
    assert.match(alone.stderr, /--nats-cert: and --nats-key go together/);
    const missing = await fleet([...base, '--nats-ca', join(dir, 'nope.pem')]);
    assert.equal(missing.exitCode, 2);
    assert.match(missing.stderr, /--nats-ca: must be a readable file: ENOENT/);
    const overSsh = await fleet(['status', '-i', inv, '--nats-ca', certs.ca]);
    assert.equal(overSsh.exitCode, 2);
    assert.match(overSsh.stderr, /--nats-ca: needs --nats/);
  });

  it("an agent with source.nats.tls connects and writes its status key; with the wrong CA it says why it cannot", async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const settings = (ca: string): Record<string, string> => {
      const file = join(node.dir, `agent-${ca === certs.ca ? 'good' : 'bad'}.toml`);
      writeFileSync(file, `[source.nats]\nurls = ["${server.url}"]\nbucket = "${BUCKET}"\nnode = "tls2"\n[source.nats.tls]\nca = "${ca}"\ncert = "${certs.clientCert}"\nkey = "${certs.clientKey}"\n`);
      return { AGENT_CONFIG: file };
    };
    // Another CA: the server's certificate does not verify.
    const otherDir = mkdtempSync(join(tmpdir(), 'agent-e2e-nats-tls-other-'));
    t.after(() => rmSync(otherDir, { recursive: true, force: true }));
    const other = await makeTestCerts(otherDir);
    const bad = node.startAgent(settings(other.ca));
    await waitFor('the source says it is not connected', async () => {
      const s = (await node.status()) as unknown as { source: { state: string } | null };
      return s.source && s.source.state !== 'connected' ? s.source.state : undefined;
    }, 30_000);
    bad.kill('SIGTERM');
    await bad;

    node.startAgent(settings(certs.ca));
    const master = await TestMaster.open([server.url], BUCKET, { create: false, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } });
    t.after(() => master.close());
    const summary = await waitFor('status.tls2 written over TLS', () => master.status('tls2'), 30_000);
    assert.equal(summary.node, 'tls2');
    const s = (await node.status()) as unknown as { source: { state: string } };
    assert.equal(s.source.state, 'connected');
  });
});
