// A master's push to a node (issue 8, node side): a bundle of services on stdin applied in one
// transaction with origin master; re-applies report unchanged, updates name their fields, a
// master's prune spares services applied locally, --dry-run writes nothing, and ssh-serve runs
// only the allowed verbs from SSH_ORIGINAL_COMMAND. Real CLI, real SQLite; nothing is started.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { IMAGE, SLEEP, TestNode, containerService } from '../helpers/agent.js';

interface ApplyJson {
  created: string[];
  updated: Array<{ name: string; changes: string[] }>;
  unchanged: string[];
  pruned: string[];
  dry_run: boolean;
}

/** A container service as a master sends it in a JSON bundle. */
const service = (name: string, memory = 64): Record<string, unknown> => ({
  name,
  runtime: 'container',
  components: [{ name: 'api', image: IMAGE, cmd: SLEEP, memory }],
});

const MASTER_APPLY = ['apply', '--origin', 'master', '--prune', '-f', '-', '--format', 'json', '--json'];

async function push(node: TestNode, bundle: unknown[], extra: string[] = []): Promise<ApplyJson> {
  return JSON.parse(await node.ok([...MASTER_APPLY, ...extra], { input: JSON.stringify(bundle) })) as ApplyJson;
}

const dump = async (node: TestNode): Promise<string> => (await execa('sqlite3', [node.db, '.dump'])).stdout;

describe('apply from a master: origin, bundle, prune, unchanged, dry run', () => {
  it('created, unchanged, updated with the field, pruned; a local service survives and cannot be taken over', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const [a, b, c, mine] = [TestNode.serviceName('a'), TestNode.serviceName('b'), TestNode.serviceName('c'), TestNode.serviceName('l')];
    await node.apply(containerService(mine, { api: SLEEP }));

    const first = await push(node, [service(a), service(b), service(c)]);
    assert.deepEqual(first, { created: [a, b, c], updated: [], unchanged: [], pruned: [], dry_run: false });
    const origins = node.query<{ name: string; origin: string }>('SELECT name, origin FROM services ORDER BY name');
    assert.deepEqual(Object.fromEntries(origins.map((r) => [r.name, r.origin])), { [a]: 'master', [b]: 'master', [c]: 'master', [mine]: 'local' });

    const again = await push(node, [service(a), service(b), service(c)]);
    assert.deepEqual(again, { created: [], updated: [], unchanged: [a, b, c], pruned: [], dry_run: false });

    const changed = await push(node, [service(a), service(b, 96), service(c)]);
    assert.deepEqual(changed.updated, [{ name: b, changes: ['components[api].memory 64 → 96'] }]);
    assert.deepEqual(changed.unchanged, [a, c]);

    const human = await node.ok(['apply', '--origin', 'master', '--prune', '-f', '-', '--format', 'json'], { input: JSON.stringify([service(a), service(b, 96)]) });
    assert.match(human, new RegExp(`service ${c} deleted \\(pruned\\)`));
    assert.match(human, new RegExp(`service ${a} unchanged`));
    assert.deepEqual(node.query<{ name: string }>('SELECT name FROM services ORDER BY name').map((r) => r.name).sort(), [a, b, mine].sort(), 'the local service survives');

    // A bundle naming the local service: refused, naming it, nothing written (the others neither).
    const before = await dump(node);
    const refused = await node.cli(MASTER_APPLY, { input: JSON.stringify([service(a, 128), service(mine)]) });
    assert.equal(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`service ${mine} was applied locally on this node: delete it there first`));
    assert.equal(await dump(node), before);
  });

  it('a bundle entry that breaks a rule is named by its index; nothing is written', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const r = await node.cli(MASTER_APPLY, { input: JSON.stringify([service(TestNode.serviceName()), service(TestNode.serviceName(), 1)]) });
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /\[1\]\.components\[0\]\.memory: must be at least 16 MiB/);
    assert.equal(existsSync(node.db), false);
  });

  it('--dry-run prints what would happen and leaves the registry byte-identical; it creates no registry', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const [a, b] = [TestNode.serviceName('a'), TestNode.serviceName('b')];

    const none = await node.ok(['apply', '-f', '-', '--format', 'json', '--dry-run'], { input: JSON.stringify([service(a)]) });
    assert.match(none, /dry run: .*agent\.db does not exist; apply would create it/);
    assert.match(none, new RegExp(`service ${a} would be created`));
    assert.equal(existsSync(node.db), false, 'no registry made by a dry run');

    await push(node, [service(a), service(b)]);
    const bytes = readFileSync(node.db);
    const before = await dump(node);
    const dry = JSON.parse(await node.ok([...MASTER_APPLY, '--dry-run'], { input: JSON.stringify([service(a, 80)]) })) as ApplyJson;
    assert.deepEqual(dry, { created: [], updated: [{ name: a, changes: ['components[api].memory 64 → 80'] }], unchanged: [], pruned: [b], dry_run: true });
    assert.equal(await dump(node), before);
    assert.ok(readFileSync(node.db).equals(bytes), 'the registry file is byte-identical');
    assert.equal(existsSync(`${node.db}-wal`) && readFileSync(`${node.db}-wal`).length > 0, false, 'nothing waits in a WAL');
  });
});

describe('ssh-serve: a forced command for the master key', () => {
  const serve = (node: TestNode, original: string | undefined, input?: string) =>
    node.cli(['ssh-serve'], { input, env: original === undefined ? {} : { SSH_ORIGINAL_COMMAND: original } });

  it('runs status and a master apply with stdin, under the forced command\'s --db', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const a = TestNode.serviceName('a');
    const applied = await serve(node, 'agent apply --origin master --prune -f - --format json --json', JSON.stringify([service(a)]));
    assert.equal(applied.exitCode, 0, applied.stderr);
    assert.deepEqual((JSON.parse(applied.stdout) as ApplyJson).created, [a]);
    assert.deepEqual(node.query<{ origin: string }>('SELECT origin FROM services'), [{ origin: 'master' }]);

    const status = await serve(node, `/usr/local/bin/agent status --json`);
    assert.equal(status.exitCode, 0, status.stderr);
    const report = JSON.parse(status.stdout) as { registry: { path: string }; components: Array<{ service: string }> };
    assert.equal(report.registry.path, node.db);
    assert.deepEqual(report.components.map((c) => c.service), [a]);
  });

  it('refuses a client --db, other verbs, shell syntax, and running without SSH_ORIGINAL_COMMAND', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    await node.apply(containerService(TestNode.serviceName(), { api: SLEEP }));
    const before = await dump(node);
    const other = join(node.dir, 'other.db');
    const cases: Array<[string | undefined, RegExp]> = [
      [`agent --db ${other} status`, /sets --db: global options are fixed by the forced command/],
      ['rm -rf /', /runs 'rm': a master's key may run only apply, status, events, plan/],
      ['status; id', /uses ";" outside quotes: shell syntax is refused/],
      ['agent delete x', /runs 'delete'/],
      [undefined, /SSH_ORIGINAL_COMMAND: is not set: ssh-serve is meant as a forced command/],
    ];
    for (const [original, rule] of cases) {
      const r = await serve(node, original);
      assert.equal(r.exitCode, 2, `${original}: ${r.stderr}`);
      assert.match(r.stderr, rule);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.equal(existsSync(other), false);
    assert.equal(await dump(node), before);
  });
});
