// The registry against real SQLite files: migrations, file mode, refusals, transactions,
// change detection across connections, validation of rows a master wrote directly.
import { strict as assert } from 'node:assert';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { RegistryError, ValidationError } from '../../src/errors.js';
import { loadManifestText } from '../../src/manifest/load.js';
import { Registry, RegistryUnwritableError, registryWritability } from '../../src/registry/index.js';
import { MIGRATIONS_DIR, readMigrations } from '../../src/registry/open.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-registry-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = (): string => join(dir, `r${++n}`, 'agent.db');

const svc = (name: string, comps: string[], extra = ''): ReturnType<typeof loadManifestText> =>
  loadManifestText(
    `name = "${name}"\nruntime = "container"\n${extra}\n` + comps.map((c) => `[[components]]\nname = "${c}"\nimage = "localhost/x:1"\ncmd = ["sleep", "9"]\n`).join('\n'),
    'toml',
    'test',
  );

describe('registry file', () => {
  it('creates the file 0600, in WAL mode, at the latest schema version', () => {
    const path = freshPath();
    const r = Registry.open(path);
    r.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), readMigrations().length);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
    assert.deepEqual(tables, ['components', 'events', 'instances', 'leases', 'meta', 'services']);
    db.close();
  });

  it('gives each registry its own agent id, kept across reopen', () => {
    const a = Registry.open(freshPath());
    const p = freshPath();
    const b = Registry.open(p);
    const idB = b.meta.agentId();
    assert.match(a.meta.agentId(), /^[0-9a-f]{16}$/);
    assert.notEqual(a.meta.agentId(), idB);
    a.close();
    b.close();
    const again = Registry.open(p);
    assert.equal(again.meta.agentId(), idB);
    again.close();
  });

  it('refuses a file that is not SQLite, and leaves it unchanged', () => {
    const path = freshPath();
    Registry.open(path).close();
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not a database, just text '.repeat(200));
    const before = readFileSync(junk);
    assert.throws(() => Registry.open(junk), (e: unknown) => e instanceof RegistryError && /not an agent registry/.test(e.message));
    assert.deepEqual(readFileSync(junk), before);
  });

  it("refuses someone else's SQLite database", () => {
    const other = join(dir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE customers (id INTEGER)');
    db.close();
    assert.throws(() => Registry.open(other), (e: unknown) => e instanceof RegistryError && /has tables but no schema version/.test(e.message));
    const check = new Database(other, { readonly: true });
    const meta = check.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'meta'").get() as { n: number };
    assert.equal(meta.n, 0, 'no agent table may be added to a foreign database');
    check.close();
  });

  it('refuses a registry from a newer agent without touching it', () => {
    const path = freshPath();
    Registry.open(path).close();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => Registry.open(path), (e: unknown) => e instanceof RegistryError && /schema version 99, newer than this agent supports/.test(e.message));
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), 99);
    check.close();
  });
});

describe('a missing or empty registry file', () => {
  it('is not created when creation is not asked for: no file, no directory', () => {
    const path = freshPath();
    assert.throws(() => Registry.open(path, { create: false }), (e: unknown) => e instanceof RegistryError && e.exitCode === 3 && /^no registry at .*agent\.db: create one with `agent apply` or `agent run`, or check --db \/ AGENT_DB$/.test(e.message));
    assert.equal(existsSync(join(path, '..')), false, 'no directory made either');
  });

  it('an empty (0-byte) file is refused, not re-created with a new agent id', () => {
    const path = freshPath();
    mkdirSync(join(path, '..'));
    writeFileSync(path, '');
    for (const create of [true, false]) {
      assert.throws(() => Registry.open(path, { create }), (e: unknown) => e instanceof RegistryError && e.exitCode === 3 && /agent\.db is empty: not a registry/.test(e.message));
    }
    assert.equal(statSync(path).size, 0, 'left as it was');
  });

  it('processes creating one registry at once all open the same one: none sees a half-made file', async () => {
    const path = freshPath();
    const script = `import { Registry } from ${JSON.stringify(new URL('../../src/registry/index.ts', import.meta.url).href)};
      const r = Registry.open(${JSON.stringify(path)}); console.log(r.meta.agentId()); r.close();`;
    const runs = await Promise.all(Array.from({ length: 6 }, () => execa('node', ['--import', 'tsx', '--input-type=module', '-e', script], { reject: false })));
    for (const r of runs) assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(new Set(runs.map((r) => r.stdout.trim())).size, 1, 'one agent id');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(path, '..')).filter((f) => f.includes('.new-')), [], 'no temporary file left');
  });
});

/**
 * A real full disk: a small tmpfs, filled with a file. Bookkeeping must not throw and must land,
 * in order, once there is room; decisions must throw; nothing may be corrupted.
 */
describe('a registry on a full disk', () => {
  it('queues bookkeeping, refuses leases and desired state, then replays in order when there is room', async (t) => {
    const mnt = mkdtempSync(join(tmpdir(), 'agent-fulldisk-'));
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    const logged: string[] = [];
    const log = { error: (_o: object, m: string) => void logged.push(`error ${m}`), warn: (_o: object, m: string) => void logged.push(`warn ${m}`) };
    const path = join(mnt, 'agent.db');
    const r = Registry.open(path, { log });
    const direct = new Database(path);
    t.after(async () => {
      rmSync(join(mnt, 'filler'), { force: true });
      r.close();
      direct.close();
      await execa('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    });
    r.desired.apply([svc('web', ['api'])]);
    const key = { service: 'web', component: 'api', runtime: 'container' };
    const written = r.events.begin({ service: 'web', component: 'api', workload: 'web-api', action: 'start', reason: 'missing' });
    direct.pragma('wal_checkpoint(TRUNCATE)'); // no slack left in the WAL for writes to reuse
    const filler = openSync(join(mnt, 'filler'), 'w');
    try {
      for (;;) writeSync(filler, Buffer.alloc(64 * 1024));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    closeSync(filler);
    const before = direct.prepare('SELECT count(*) AS n FROM events').get() as { n: number };

    for (let i = 0; i < 50; i++) r.events.append({ service: 'web', component: 'api', workload: 'web-api', action: 'restart', reason: `r${i}`, outcome: 'ok', message: '' });
    r.instances.recordFailure('web-api', key, { failures: 3, nextAttemptAt: '2030-01-01T00:00:00.000Z', error: 'boom', specHash: 'h1' });
    r.meta.beat(1, new Date());
    // An intent begun on the full disk and settled before it could be written is written settled;
    // one written before the disk filled is settled once there is room.
    const queued = r.events.begin({ service: 'web', component: 'api', workload: 'web-api', action: 'replace', reason: 'spec changed' });
    r.events.settle(queued, 'ok', 'replaced');
    r.events.settle(written, 'error', 'no such image');
    assert.equal(r.writes.state().writable, false);
    assert.equal(r.instances.failuresFor('web-api', 'h1'), 3, 'reads see the queued writes');
    assert.equal(r.instances.all()[0]?.nextAttemptAt, '2030-01-01T00:00:00.000Z');
    assert.throws(() => r.leases.take('host_port', '2222', key, 'ssh'), (e: unknown) => e instanceof RegistryUnwritableError && /^cannot write registry .*agent\.db: the disk is full .*nothing was changed$/.test(e.message));
    assert.throws(() => r.desired.apply([svc('other', ['x'])]), RegistryUnwritableError);
    assert.equal(registryWritability(path).writable, false);
    assert.match(registryWritability(path).reason ?? '', /the disk is full/);
    assert.deepEqual(direct.prepare('SELECT count(*) AS n FROM events').get(), before, 'nothing reached the file yet');
    assert.deepEqual(logged.filter((l) => l.startsWith('error')).length, 1, `logged once: ${logged.join(' | ')}`);

    rmSync(join(mnt, 'filler'));
    assert.equal(r.writes.flush(), true);
    const reasons = (direct.prepare("SELECT reason FROM events WHERE action = 'restart' ORDER BY id").all() as Array<{ reason: string }>).map((e) => e.reason);
    assert.deepEqual(reasons, Array.from({ length: 50 }, (_, i) => `r${i}`), 'every queued event, in order');
    assert.equal((direct.prepare("SELECT failures FROM instances WHERE workload = 'web-api'").get() as { failures: number }).failures, 3);
    const intents = direct.prepare("SELECT action, outcome, message FROM events WHERE action IN ('start', 'replace') ORDER BY id").all();
    assert.deepEqual(intents, [
      { action: 'start', outcome: 'error', message: 'no such image' },
      { action: 'replace', outcome: 'ok', message: 'replaced' },
    ]);
    assert.equal(direct.pragma('integrity_check', { simple: true }), 'ok');
    assert.equal(r.leases.take('host_port', '2222', key, 'ssh'), true);
    assert.equal(r.writes.state().writable, true);
    assert.deepEqual(logged.map((l) => l.split(':')[0]), ['error registry not writable', 'warn registry writable again'], logged.join(' | '));
  });
});

describe('desired state', () => {
  it('round-trips a service with defaults resolved', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('web', ['api', 'worker'], 'comment = "hello"')]);
    const d = r.desired.read();
    assert.deepEqual(d.services.map((s) => [s.name, s.active, s.comment]), [['web', true, 'hello']]);
    assert.equal(d.components.length, 2);
    const api = d.components[0]!;
    assert.ok(api.valid);
    assert.equal(api.spec.restart, 'always');
    assert.equal(api.spec.network, 'none');
    assert.deepEqual(api.spec.cmd, ['sleep', '9']);
    r.close();
  });

  it('replaces the component set of a service on re-apply', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('web', ['a', 'b'])]);
    const res = r.desired.apply([svc('web', ['b', 'c'])]);
    assert.deepEqual(res, { created: [], updated: [{ name: 'web', changes: ['components added: c', 'components removed: a'] }], unchanged: [], pruned: [] });
    assert.deepEqual(r.desired.read().components.map((c) => c.component), ['b', 'c']);
    r.close();
  });

  it('prune makes the registry hold exactly the given services', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('one', ['a']), svc('two', ['a'])]);
    const res = r.desired.apply([svc('two', ['a']), svc('three', ['a'])], { prune: true });
    assert.deepEqual(res, { created: ['three'], updated: [], unchanged: ['two'], pruned: ['one'] });
    assert.deepEqual(r.desired.read().services.map((s) => s.name), ['three', 'two']);
    r.close();
  });

  it('deleting a service cascades to its components', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('web', ['a', 'b'])]);
    assert.equal(r.desired.delete('web'), true);
    assert.equal(r.desired.delete('web'), false);
    assert.deepEqual(r.desired.read(), { services: [], components: [] });
    r.close();
  });

  it('rejects a workload-name clash across services and rolls back the whole apply', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('a-b', ['c'])]);
    assert.throws(
      () => r.desired.apply([svc('fresh', ['x']), svc('a', ['b-c'])]),
      (e: unknown) => e instanceof ValidationError && e.issues[0]!.field === 'components[0].name' && /already used by a-b\/c/.test(e.issues[0]!.rule),
    );
    // 'fresh' came first in the same apply and must not have been kept.
    assert.deepEqual(r.desired.read().services.map((s) => s.name), ['a-b']);
    r.close();
  });

  it('checks workload-name clashes against the final state, whatever the order of the set', () => {
    const r = Registry.open(freshPath());
    r.desired.apply([svc('a', ['b-c'])]);
    // 'a-b'/'c' clashes with the existing 'a'/'b-c' only if 'a' kept that component: it does not.
    const res = r.desired.apply([svc('a-b', ['c']), svc('a', ['x'])], { prune: true });
    assert.deepEqual(res, { created: ['a-b'], updated: [{ name: 'a', changes: ['components added: x', 'components removed: b-c'] }], unchanged: [], pruned: [] });
    assert.deepEqual(r.desired.read().components.map((c) => `${c.service}/${c.component}`), ['a/x', 'a-b/c']);
    r.close();
  });

  it('reports a row a master wrote badly as invalid instead of throwing', () => {
    const path = freshPath();
    const r = Registry.open(path);
    const master = new Database(path);
    master.exec(`INSERT INTO services (name) VALUES ('raw');
      INSERT INTO components (service, name, runtime, image, memory_mib) VALUES ('raw', 'good', 'container', 'localhost/x:1', 64);
      INSERT INTO components (service, name, runtime, image, memory_mib) VALUES ('raw', 'bad', 'container', '-evil', -5);`);
    master.close();
    const comps = r.desired.read().components;
    const good = comps.find((c) => c.component === 'good')!;
    const bad = comps.find((c) => c.component === 'bad')!;
    assert.equal(good.valid, true);
    assert.equal(bad.valid, false);
    assert.ok(!bad.valid && /image: .*image reference/.test(bad.error) && /memory: must be at least 16 MiB/.test(bad.error), JSON.stringify(bad));
    r.close();
  });

  it('the schema itself refuses an unknown runtime or a non-JSON cmd', () => {
    const path = freshPath();
    Registry.open(path).close();
    const master = new Database(path);
    master.exec("INSERT INTO services (name) VALUES ('raw')");
    assert.throws(() => master.exec("INSERT INTO components (service, name, runtime, image) VALUES ('raw', 'x', 'vm', 'i')"), /CHECK constraint failed/);
    assert.throws(() => master.exec("INSERT INTO components (service, name, runtime, image, cmd) VALUES ('raw', 'y', 'container', 'i', 'sleep 1')"), /malformed JSON|CHECK constraint failed/);
    master.close();
  });
});

describe('change detection', () => {
  it('data_version moves on a commit by another connection, not on our own writes', () => {
    const path = freshPath();
    const r = Registry.open(path);
    const v0 = r.dataVersion();
    r.desired.apply([svc('own', ['a'])]);
    r.events.append({ service: 'own', component: 'a', workload: 'own-a', action: 'start', reason: 'test', outcome: 'ok', message: '' });
    assert.equal(r.dataVersion(), v0, 'own writes must not look like a master push');
    const master = new Database(path);
    master.exec("INSERT INTO services (name) VALUES ('pushed')");
    master.close();
    assert.notEqual(r.dataVersion(), v0);
    r.close();
  });
});

describe('instances and events', () => {
  it('counts restarts, records failures and clears them', () => {
    const r = Registry.open(freshPath());
    const key = { service: 's', component: 'c', runtime: 'container' };
    r.instances.recordStarted({ workload: 's-c', ...key, handle: 'id1', specHash: 'h', restarted: false });
    r.instances.recordStarted({ workload: 's-c', ...key, handle: 'id2', specHash: 'h', restarted: true });
    r.instances.recordFailure('s-c', key, { failures: 2, nextAttemptAt: '2030-01-01T00:00:00.000Z', error: 'boom', specHash: 'h' });
    assert.equal(r.instances.failuresFor('s-c', 'h'), 2);
    assert.equal(r.instances.failuresFor('s-c', 'other'), 0, 'a new spec starts from zero failures');
    let rec = r.instances.all()[0]!;
    assert.equal(rec.handle, 'id2');
    assert.equal(rec.restarts, 1);
    assert.equal(rec.failures, 2);
    assert.equal(rec.lastError, 'boom');
    r.instances.clearFailures('s-c');
    rec = r.instances.all()[0]!;
    assert.equal(rec.failures, 0);
    assert.equal(rec.nextAttemptAt, null);
    r.instances.forget('s-c');
    assert.deepEqual(r.instances.all(), []);
    r.close();
  });

  it('returns the newest event per component', () => {
    const r = Registry.open(freshPath());
    const e = { workload: 's-c', reason: '', message: '' };
    r.events.append({ ...e, service: 's', component: 'c', action: 'start', outcome: 'ok' });
    r.events.append({ ...e, service: 's', component: 'c', action: 'restart', outcome: 'error' });
    r.events.append({ ...e, service: 's', component: 'd', action: 'start', outcome: 'ok' });
    const latest = r.events.latestPerComponent();
    assert.equal(latest.get('s/c')?.action, 'restart');
    assert.equal(latest.get('s/d')?.action, 'start');
    assert.equal(r.events.recent(10).length, 3);
    assert.equal(r.events.recent(10, { service: 's', component: 'd' }).length, 1);
    r.close();
  });
});

describe('event intents', () => {
  const ev = { service: 's', component: 'c', workload: 's-c', action: 'remove', reason: 'orphan' };

  it('an intent is pending until settled; settling twice keeps the first outcome', () => {
    const r = Registry.open(freshPath());
    const id = r.events.begin(ev, 4242);
    assert.equal(r.events.recent(1)[0]?.outcome, 'pending');
    assert.match(r.events.recent(1)[0]!.message, /pid 4242/);
    r.events.settle(id, 'ok', 'stopped, removed');
    r.events.settle(id, 'error', 'late');
    assert.deepEqual([r.events.recent(1)[0]?.outcome, r.events.recent(1)[0]?.message], ['ok', 'stopped, removed']);
    r.close();
  });

  it('open intents of an ended agent become interrupted; settled ones are untouched', () => {
    const r = Registry.open(freshPath());
    r.events.settle(r.events.begin(ev), 'ok', 'done');
    r.events.begin({ ...ev, action: 'start' }, 4242);
    assert.equal(r.events.interruptPending(), 1);
    assert.equal(r.events.interruptPending(), 0);
    const [last, first] = r.events.recent(2);
    assert.equal(first?.outcome, 'ok');
    assert.equal(last?.outcome, 'interrupted');
    assert.match(last!.message, /the agent ended before this finished \(agent pid 4242\)/);
    r.close();
  });

  it('migration 003 keeps a version-2 log, its ids, and numbering after them', () => {
    const path = freshPath();
    const two = join(dir, `m${++n}`);
    mkdirSync(two, { recursive: true });
    for (const f of readdirSync(MIGRATIONS_DIR).filter((x) => /^00[12]_/.test(x))) copyFileSync(join(MIGRATIONS_DIR, f), join(two, f));
    const old = Registry.open(path, { migrationsDir: two });
    old.events.append({ ...ev, outcome: 'ok', message: 'one' });
    old.events.append({ ...ev, outcome: 'error', message: 'two' });
    old.close();
    const r = Registry.open(path);
    assert.deepEqual(r.events.recent(5).map((e) => [e.id, e.message]), [[2, 'two'], [1, 'one']]);
    assert.equal(r.events.begin(ev).id, 3);
    r.close();
    const db = new Database(path, { readonly: true });
    assert.throws(() => db.prepare("INSERT INTO events (action, outcome) VALUES ('start', 'bogus')").run());
    db.close();
  });
});

describe('the reconciler claim', () => {
  const claim = (pid: number, start = 100) => ({ pid, start, boot: 'b', mode: 'run', since: '2026-01-01T00:00:00.000Z' });

  it('goes to the first claimant; a second is refused while the holder lives, and told who holds it', () => {
    const path = freshPath();
    const a = Registry.open(path);
    const b = Registry.open(path);
    try {
      assert.equal(a.meta.claimReconciler(claim(1), () => true), undefined);
      assert.deepEqual(b.meta.claimReconciler(claim(2), () => true), claim(1));
      assert.equal(b.meta.reconciler()?.pid, 1, 'the refused claim wrote nothing');
      // the same process claiming again (a restart of its loop) keeps it
      assert.equal(a.meta.claimReconciler(claim(1), () => true), undefined);
    } finally {
      a.close();
      b.close();
    }
  });

  it('is taken over from a holder that is no longer alive (killed agent, reused pid)', () => {
    const r = Registry.open(freshPath());
    try {
      r.meta.claimReconciler(claim(1), () => true);
      const seen: number[] = [];
      assert.equal(r.meta.claimReconciler(claim(2), (h) => (seen.push(h.pid), false)), undefined);
      assert.deepEqual(seen, [1], 'liveness was asked about the holder');
      assert.equal(r.meta.reconciler()?.pid, 2);
    } finally {
      r.close();
    }
  });

  it('is released only by its holder (same pid and start time)', () => {
    const r = Registry.open(freshPath());
    try {
      r.meta.claimReconciler(claim(1, 100), () => true);
      r.meta.releaseReconciler({ pid: 1, start: 999 }); // a reused pid: not the holder
      assert.equal(r.meta.reconciler()?.pid, 1);
      r.meta.releaseReconciler({ pid: 1, start: 100 });
      assert.equal(r.meta.reconciler(), undefined);
    } finally {
      r.close();
    }
  });
});
