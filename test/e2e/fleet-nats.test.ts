// The master's side through NATS: a real `nats-server -js` on a free loopback port (its store in a
// temp dir), the real CLI writing `desired.<node>.<service>` keys and reading `status.<node>`, and
// the nats client checking the bucket as an agent would see it. No agent runs here.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { connect, type KV, type NatsConnection } from 'nats';
import { executePlan, readDesired } from '../../src/fleet/nats-apply.js';
import { manifestValue, planNodeKeys } from '../../src/fleet/nats-plan.js';
import { natsApplyLine } from '../../src/cli/fleet-nats.js';
import { BIN, IMAGE, type CliResult } from '../helpers/agent.js';
import { freePort, NatsServer, nodeSummary } from '../helpers/nats-server.js';

const BUCKET = 'nats-master-test';

const service = (name: string, placement: string, cmd = 'sleep 600'): string =>
  `name = "${name}"\n${placement}\n[[components]]\nname = "c"\nruntime = "container"\nimage = "${IMAGE}"\ncmd = ${JSON.stringify(cmd.split(' '))}\n`;

/** The manifest an agent must find under desired.<node>.<service>: placement stripped. */
const expected = (name: string, cmd = 'sleep 600'): unknown => ({ name, components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: cmd.split(' ') }] });

describe('fleet over NATS: apply writes each node\'s keys with expected revisions, status reads heartbeats', () => {
  let server: NatsServer;
  let dir: string;
  let desired: string;
  let inv: string;
  let nc: NatsConnection;
  let kv: KV;

  const fleet = async (args: string[]): Promise<CliResult> => {
    const r = await execa('node', [BIN, 'fleet', ...args], { reject: false, stdin: 'ignore', env: { AGENT_LOG_LEVEL: 'warn' }, timeout: 60_000 });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const apply = (...extra: string[]): Promise<CliResult> => fleet(['apply', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '-f', desired, ...extra]);
  const lines = (r: CliResult): string[] => r.stdout.trim().split('\n');
  /** key -> [revision, value] of every live desired key. */
  const snapshot = async (): Promise<Map<string, [number, unknown]>> => {
    const out = new Map<string, [number, unknown]>();
    const keys: string[] = [];
    for await (const k of await kv.keys('desired.>')) keys.push(k);
    for (const k of keys) {
      const e = await kv.get(k);
      if (e && e.operation === 'PUT') out.set(k, [e.revision, e.json()]);
    }
    return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
  };
  const lastSeq = async (): Promise<number> => (await kv.status()).streamInfo.state.last_seq;

  before(async () => {
    server = await NatsServer.start();
    dir = mkdtempSync(join(tmpdir(), 'nats-master-fleet-'));
    desired = join(dir, 'desired');
    mkdirSync(desired);
    // Names and labels only: no host, key or host_key is needed with --nats.
    inv = join(dir, 'inventory.toml');
    writeFileSync(inv, '[[nodes]]\nname = "a"\nlabels = { role = "edge" }\n\n[[nodes]]\nname = "b"\nlabels = { role = "edge" }\n\n[[nodes]]\nname = "c"\nlabels = { role = "core" }\n');
    writeFileSync(join(desired, 'web.toml'), service('web', 'selector = { role = "edge" }'));
    writeFileSync(join(desired, 'api.toml'), service('api', 'nodes = ["a"]'));
    writeFileSync(join(desired, 'db.toml'), service('db', 'nodes = ["c"]'));
  });
  after(async () => {
    await nc?.close();
    await server?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('apply creates the bucket and puts each node\'s services as desired.<node>.<service>, placement stripped', async () => {
    const r = await apply();
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    assert.deepEqual(lines(r), [
      'a: ok created 2, updated 0, unchanged 0, pruned 0 [created: api web]',
      'b: ok created 1, updated 0, unchanged 0, pruned 0 [created: web]',
      'c: ok created 1, updated 0, unchanged 0, pruned 0 [created: db]',
    ]);
    nc = await connect({ servers: server.url });
    kv = await nc.jetstream().views.kv(BUCKET, { bindOnly: true });
    const st = await kv.status();
    assert.equal(st.history, 5);
    assert.equal(st.replicas, 1);
    const snap = await snapshot();
    assert.deepEqual([...snap.keys()], ['desired.a.api', 'desired.a.web', 'desired.b.web', 'desired.c.db']);
    assert.deepEqual(snap.get('desired.a.web')![1], expected('web'));
    assert.deepEqual(snap.get('desired.c.db')![1], expected('db'));
  });

  it('a re-apply of the same directory writes nothing: every revision stays', async () => {
    const before = await snapshot();
    const seq = await lastSeq();
    const r = await apply();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(lines(r), ['a: ok created 0, updated 0, unchanged 2, pruned 0', 'b: ok created 0, updated 0, unchanged 1, pruned 0', 'c: ok created 0, updated 0, unchanged 1, pruned 0']);
    assert.deepEqual(await snapshot(), before);
    assert.equal(await lastSeq(), seq, 'no message was added to the bucket');
  });

  it('a changed manifest updates its keys, naming the field; plan --nats says so first and writes nothing', async () => {
    writeFileSync(join(desired, 'web.toml'), service('web', 'selector = { role = "edge" }', 'sleep 700'));
    const seq = await lastSeq();
    const plan = await fleet(['plan', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '-f', desired]);
    assert.equal(plan.exitCode, 0, plan.stderr);
    assert.match(plan.stdout, /^a: would apply created 0, updated 1, unchanged 1, pruned 0 \[updated: web\(components\[c\]\.cmd .*\)\]$/m);
    assert.equal(await lastSeq(), seq, 'plan wrote nothing');
    const before = await snapshot();
    const r = await apply();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^a: ok created 0, updated 1, unchanged 1, pruned 0 \[updated: web\(components\[c\]\.cmd/m);
    assert.match(r.stdout, /^c: ok created 0, updated 0, unchanged 1, pruned 0$/m);
    const now = await snapshot();
    assert.deepEqual(now.get('desired.a.web')![1], expected('web', 'sleep 700'));
    assert.ok(now.get('desired.a.web')![0] > before.get('desired.a.web')![0]);
    assert.equal(now.get('desired.c.db')![0], before.get('desired.c.db')![0], 'c was not touched');
  });

  it('a removed manifest prunes its key; an emptied node is refused without --allow-empty, emptied with it', async () => {
    unlinkSync(join(desired, 'api.toml'));
    const r = await apply();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^a: ok created 0, updated 0, unchanged 1, pruned 1 \[pruned: api\]$/m);
    assert.equal((await snapshot()).has('desired.a.api'), false);
    assert.equal((await kv.get('desired.a.api'))?.operation, 'DEL', 'a delete marker: a watching agent sees the removal');

    unlinkSync(join(desired, 'db.toml'));
    const refused = await apply('--nodes', 'c');
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stdout, /^c: FAILED \(refused\) its set is empty: pass --allow-empty .*desired\.c\.db/m);
    assert.equal((await snapshot()).has('desired.c.db'), true, 'nothing deleted');
    const emptied = await apply('--nodes', 'c', '--allow-empty');
    assert.equal(emptied.exitCode, 0, emptied.stderr);
    assert.deepEqual(lines(emptied), ['c: ok created 0, updated 0, unchanged 0, pruned 1 [pruned: db]']);
    assert.deepEqual([...(await snapshot()).keys()], ['desired.a.web', 'desired.b.web']);
  });

  it('a key another master changed between this master\'s read and write is refused, naming it and both revisions; the rest goes on', async () => {
    // The master's two steps, as the CLI runs them: read the keys with their revisions, plan...
    const current = await readDesired(kv, ['a'], 5000);
    const wanted = [
      { name: 'web', manifest: { name: 'web', components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: ['sleep', '800'] }] } },
      { name: 'extra', manifest: { name: 'extra', components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: ['sleep', '1'] }] } },
    ];
    const plan = planNodeKeys('a', wanted, current.get('a') ?? new Map(), { allowEmpty: false });
    const read = current.get('a')!.get('web')!.revision;
    // ...meanwhile another master writes desired.a.web...
    const theirs = await kv.put('desired.a.web', manifestValue({ name: 'web', components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: ['sleep', '900'] }] }));
    // ...then this master writes its plan.
    const r = await executePlan(kv, plan, false);
    assert.equal(r.ok, false);
    assert.deepEqual(r.failed.map((f) => [f.key, f.kind]), [['desired.a.web', 'conflict']]);
    assert.match(r.failed[0]!.error, new RegExp(`desired\\.a\\.web was changed by another writer .*expected revision ${read}, found revision ${theirs}`));
    assert.deepEqual(r.created, ['extra'], 'the node\'s other key was written');
    assert.match(natsApplyLine(r), /^a: FAILED \(conflict\) desired\.a\.web was changed by another writer .*; done meanwhile: created 1, updated 0/);
    assert.deepEqual(((await kv.get('desired.a.web'))!.json() as { components: Array<{ cmd: string[] }> }).components[0]!.cmd, ['sleep', '900'], 'the other master\'s value stands');
    // A create races too: a key that appeared meanwhile is not overwritten.
    const plan2 = planNodeKeys('b', [{ name: 'late', manifest: wanted[1]!.manifest }], new Map(), { allowEmpty: false });
    const other = await kv.put('desired.b.late', manifestValue({ name: 'late', components: [] }));
    const r2 = await executePlan(kv, plan2, false);
    assert.match(r2.failed[0]?.error ?? '', new RegExp(`desired\\.b\\.late was changed by another writer .*expected no key, found revision ${other}`));
    await kv.delete('desired.a.extra');
    await kv.delete('desired.b.late');
  });

  it('a re-run of the CLI reads the other master\'s revision and applies over it, knowingly', async () => {
    const r = await apply('--nodes', 'a,b');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^a: ok created 0, updated 1, unchanged 0, pruned 0 \[updated: web\(components\[c\]\.cmd/m);
  });

  it('status reads every status.<node>: reporting, stale (old heartbeat), never reported, unparsable; --check exits 1', async () => {
    await kv.put('status.a', JSON.stringify(nodeSummary('a', { counts: { 'in-sync': 2 }, appliedRevision: 7 })));
    await kv.put('status.b', JSON.stringify(nodeSummary('b', { ageSeconds: 120, counts: { 'in-sync': 0, missing: 1 }, failing: [{ component: 'web/c', drift: 'missing', reason: 'no container', last_error: null }] })));
    await kv.put('status.zz', 'not json at all');
    const r = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ node: string; ok: boolean; state: string; inInventory: boolean; error?: string; value?: { inSync: number; drifted: number; appliedRevision: number | null } }>;
    assert.deepEqual(rows.map((x) => [x.node, x.state, x.ok, x.inInventory]), [['a', 'reporting', true, true], ['b', 'stale', false, true], ['c', 'never-reported', false, true], ['zz', 'unparsable', false, false]]);
    assert.deepEqual([rows[0]!.value!.inSync, rows[0]!.value!.drifted, rows[0]!.value!.appliedRevision], [2, 0, 7]);
    assert.equal(rows[1]!.value!.drifted, 1, 'a stale node still shows its last summary');
    assert.match(rows[3]!.error!, /status\.zz is not JSON/);

    const table = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--detail']);
    assert.equal(table.exitCode, 0, table.stderr);
    assert.match(table.stdout, /NODE\s+STATE\s+HEARTBEAT/);
    assert.match(table.stdout, /\bb\s+STALE\s+2m ago/);
    assert.match(table.stdout, /\bc\s+never reported\b/);
    assert.match(table.stdout, /zz \(not in inventory\)\s+UNPARSABLE/);
    assert.match(table.stdout, /\bb\s+web\/c\s+missing\s+no container/);

    assert.equal((await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--check'])).exitCode, 1);
    const onlyA = await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--check', '--nodes', 'a', '--json']);
    assert.equal(onlyA.exitCode, 0, 'a reporting, in-sync node passes --check');
    assert.deepEqual((JSON.parse(onlyA.stdout) as Array<{ node: string }>).map((x) => x.node), ['a'], 'a selection shows only its nodes');
    assert.equal((await fleet(['status', '--nats', server.url, '--bucket', BUCKET, '-i', inv, '--check', '--nodes', 'c'])).exitCode, 1, 'never reported fails --check');
  });

  it('a server nobody listens on is a clear error naming the URL (exit 1); bad flags and inventories exit 2 before connecting', async () => {
    const dead = `nats://127.0.0.1:${await freePort()}`;
    for (const args of [['status'], ['apply', '-f', desired]]) {
      const r = await fleet([...args, '--nats', dead, '-i', inv, '--timeout', '3s']);
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot reach NATS at ${dead.replace(/\./g, '\\.')}: connection refused`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    const badUrl = await fleet(['status', '--nats', 'http://x/y', '-i', inv]);
    assert.equal(badUrl.exitCode, 2);
    assert.match(badUrl.stderr, /--nats: must be nats:\/\/host:port/);
    const badBucket = await fleet(['status', '--nats', dead, '--bucket', 'a.b', '-i', inv]);
    assert.equal(badBucket.exitCode, 2);
    assert.match(badBucket.stderr, /--bucket: must be 1-64 letters, digits, - or _/);
    const badInv = join(dir, 'bad.toml');
    writeFileSync(badInv, '[[nodes]]\nname = "a"\nhots = "x"\n');
    const r = await fleet(['apply', '--nats', dead, '-i', badInv, '-f', desired]);
    assert.equal(r.exitCode, 2, 'the inventory is checked before any connection');
    assert.match(r.stderr, /hots/);
  });
});
