// Bad input through the real CLI: a clear error naming the field and the rule, a non-zero exit,
// and a registry exactly as it was (compared as a full SQL dump, before and after).
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, before, after } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { TestNode, containerService, SLEEP, IMAGE, ROOT } from '../helpers/agent.js';

const node = new TestNode();
const svc = TestNode.serviceName();
const VALID = containerService(svc, { api: SLEEP, worker: SLEEP });

async function dump(): Promise<string> {
  return (await execa('sqlite3', [node.db, '.dump'])).stdout;
}

before(async () => {
  await node.apply(VALID);
});
after(() => node.cleanup());

/** Writes `text` to a file, applies it, and checks exit code, message and unchanged registry. */
async function rejects(fileName: string, text: string, expected: RegExp[]): Promise<void> {
  const file = join(node.dir, fileName);
  writeFileSync(file, text);
  const before = await dump();
  const r = await node.cli(['apply', '-f', file]);
  assert.equal(r.exitCode, 2, `exit code 2 for ${fileName}; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  for (const e of expected) assert.match(r.stderr, e);
  assert.equal(await dump(), before, 'registry unchanged');
}

const component = (body: string): string => `name = "${svc}"\nruntime = "container"\n[[components]]\nimage = "${IMAGE}"\n${body}\n`;

describe('bad manifests are refused and change nothing', () => {
  const names: Array<[string, string, RegExp]> = [
    ['path traversal', '../x', /components\[0\]\.name: must match/],
    ['space', 'has space', /components\[0\]\.name: must match/],
    ['uppercase', 'Api', /components\[0\]\.name: must match/],
    ['empty', '', /components\[0\]\.name: must not be empty/],
    ['over-long', 'a'.repeat(31), /components\[0\]\.name: must be at most 30 characters/],
  ];
  for (const [what, name, re] of names) {
    it(`component name: ${what}`, () => rejects(`name-${what.replace(/\W/g, '')}.toml`, component(`name = ${JSON.stringify(name)}`), [re, /^agent: invalid /]));
  }

  it('service name with ..', () => rejects('svc.toml', VALID.replace(`name = "${svc}"`, 'name = "../etc"'), [/^\s+name: must match/m]));
  it('unknown runtime', () => rejects('rt.toml', component('name = "x"\nruntime = "vm"'), [/components\[0\]\.runtime: must be one of container, unikernel/]));
  it('negative memory', () => rejects('mem.toml', component('name = "x"\nmemory = -1'), [/components\[0\]\.memory: must be at least 16 MiB/]));
  it('absurd memory', () => rejects('mem2.toml', component('name = "x"\nmemory = 99999999999'), [/components\[0\]\.memory: must be at most 1048576 MiB/]));
  it('fractional memory', () => rejects('mem3.toml', component('name = "x"\nmemory = 1.5'), [/components\[0\]\.memory: must be a whole number of MiB/]));
  it('zero vcpus', () => rejects('cpu.toml', component('name = "x"\nvcpus = 0'), [/components\[0\]\.vcpus: must be at least 1/]));
  it('absurd vcpus', () => rejects('cpu2.toml', component('name = "x"\nvcpus = 100000'), [/components\[0\]\.vcpus: must be at most 256/]));
  it('duplicate component names', () =>
    rejects('dup.toml', `name = "${svc}"\nruntime = "container"\n[[components]]\nname = "a"\nimage = "${IMAGE}"\n[[components]]\nname = "a"\nimage = "${IMAGE}"\n`, [/components\[1\]\.name: duplicates components\[0\]\.name 'a'/]));
  it('a typo in a field name', () => rejects('typo.toml', component('name = "x"\nimgae = "y"'), [/components\[0\]\.imgae: is not a known field/]));
  it('an image that would read as a flag', () => rejects('flag.toml', `name = "${svc}"\nruntime = "container"\n[[components]]\nname = "x"\nimage = "--privileged"\n`, [/components\[0\]\.image: must be an image reference/]));
  it('malformed TOML', () => rejects('bad.toml', 'name = "x\n[[components]', [/\(document\): is not valid TOML/]));
  it('malformed YAML', () => rejects('bad.yaml', 'name: x\ncomponents:\n  - name: [unclosed\n', [/\(document\): is not valid YAML/]));
  it('malformed JSON', () => rejects('bad.json', '{"name": "x",', [/\(document\): is not valid JSON/]));
  it('an unknown file type', () => rejects('svc.ini', 'name = x', [/\(file\): must end in \.toml, \.yaml, \.yml or \.json/]));

  it('a bad manifest from stdin', async () => {
    const before = await dump();
    const r = await node.cli(['apply', '-f', '-', '--format', 'json'], { input: JSON.stringify({ name: svc, components: [{ name: 'x', image: IMAGE }] }) });
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /components\[0\]\.runtime: is required when the service sets no runtime/);
    assert.equal(await dump(), before);
  });

  it('apply --prune with one bad file in the directory changes nothing at all', async () => {
    const dir = join(node.dir, 'desired');
    mkdirSync(dir);
    writeFileSync(join(dir, 'good.toml'), containerService(TestNode.serviceName(), { a: SLEEP }));
    writeFileSync(join(dir, 'bad.yaml'), `name: ${TestNode.serviceName()}\nruntime: container\ncomponents:\n  - name: b\n    image: ${IMAGE}\n    vcpus: -2\n`);
    const before = await dump();
    const r = await node.cli(['apply', '--prune', '-f', dir]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /bad\.yaml.*components\[0\]\.vcpus: must be at least 1/s);
    assert.equal(await dump(), before, `${svc} was not pruned, good.toml not applied`);
  });

  it('apply --prune of a directory with no manifests is refused unless --allow-empty', async () => {
    const empty = join(node.dir, 'empty');
    mkdirSync(empty);
    const before = await dump();
    const r = await node.cli(['apply', '--prune', '-f', empty]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /--file: .*holds no manifests; pass --allow-empty/);
    assert.equal(await dump(), before);
  });

  it('apply --prune refuses a single file (it would delete every other service)', async () => {
    const file = join(node.dir, 'one.toml');
    writeFileSync(file, VALID);
    const r = await node.cli(['apply', '--prune', '-f', file]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /--file: must be a directory with --prune/);
  });

  it('deleting a service that does not exist is an error', async () => {
    const r = await node.cli(['delete', 'nosuch']);
    assert.equal(r.exitCode, 4);
    assert.match(r.stderr, /no service named 'nosuch'/);
  });

  it('an unknown command or option is a usage error', async () => {
    assert.equal((await node.cli(['frobnicate'])).exitCode, 2);
    const r = await node.cli(['status', '--jsno']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /unknown option '--jsno'/);
  });

  it('a bad setting names the setting', async () => {
    const cfg = join(node.dir, 'bad-config.toml');
    writeFileSync(cfg, 'parallelism = 0\nresync = "every minute"\n');
    const r = await node.cli(['status'], { env: { AGENT_CONFIG: cfg } });
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /parallelism: must be at least 1/);
    assert.match(r.stderr, /resync: must be a cron expression/);
  });
});

describe('registry files the agent must not use', () => {
  it('a missing registry: every command but apply and run fails with exit 3 and creates nothing', async () => {
    const missingDir = join(node.dir, 'typo', 'deeper');
    const file = join(missingDir, 'agent.db');
    const commands = [['status'], ['status', '--json'], ['plan'], ['events'], ['delete', svc], ['exec', `${svc}/api`, '--', 'true'], ['logs', `${svc}/api`]];
    for (const args of commands) {
      const r = await execa('node', ['bin/agent.js', '--db', file, ...args], { reject: false, cwd: ROOT });
      assert.equal(r.exitCode, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `agent: no registry at ${file}: create one with \`agent apply\` or \`agent run\`, or check --db / AGENT_DB`);
      assert.equal(existsSync(join(node.dir, 'typo')), false, `${args.join(' ')} created no directory`);
    }
  });

  it('an empty (0-byte) registry file: exit 3, not re-created with a new agent id', async () => {
    const file = join(node.dir, 'empty.db');
    writeFileSync(file, '');
    writeFileSync(join(node.dir, 'one.toml'), VALID);
    for (const args of [['status'], ['apply', '-f', join(node.dir, 'one.toml')], ['run', '--once']]) {
      const r = await execa('node', ['bin/agent.js', '--db', file, ...args], { reject: false, cwd: ROOT });
      assert.equal(r.exitCode, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^agent: .*empty\.db is empty: not a registry \(restore it from a backup, or remove it/);
      assert.equal(statSync(file).size, 0, `${args.join(' ')} left the file as it was`);
    }
  });

  it('a file that is not SQLite: exit 3, file untouched', async () => {
    const file = join(node.dir, 'notes.db');
    writeFileSync(file, 'shopping list: milk, eggs\n'.repeat(100));
    const bytes = readFileSync(file);
    const r = await execa('node', ['bin/agent.js', '--db', file, 'status'], { reject: false, cwd: ROOT });
    assert.equal(r.exitCode, 3);
    assert.match(r.stderr, /is not an agent registry: not an SQLite database/);
    assert.deepEqual(readFileSync(file), bytes);
  });

  it('a registry from a newer agent: exit 3, nothing written', async () => {
    const file = join(node.dir, 'newer.db');
    const db = new Database(file);
    db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('agent_id', 'x');");
    db.pragma('user_version = 42');
    db.close();
    const bytes = readFileSync(file);
    const r = await execa('node', ['bin/agent.js', '--db', file, 'apply', '-f', join(node.dir, 'one.toml')], { reject: false, cwd: ROOT });
    assert.equal(r.exitCode, 3);
    assert.match(r.stderr, /schema version 42, newer than this agent supports/);
    assert.deepEqual(readFileSync(file), bytes);
  });
});
