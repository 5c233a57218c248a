// Migration 006 on a real SQLite file: it rebuilds the services table (a new origin 'nats' in its
// CHECK) with foreign keys off around it. A registry at schema 5 with services of both older
// origins, their components and instances, opened by the current code, must keep every row, every
// origin and the components' foreign key (still cascading), accept 'nats', and pass SQLite's checks.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Registry } from '../../src/registry/index.js';
import { readMigrations } from '../../src/registry/open.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-migration-006-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A registry file at schema 5, built with the real migrations 001-005, holding rows of every kind. */
function registryAt5(path: string): void {
  const db = new Database(path);
  try {
    for (const m of readMigrations().filter((x) => x.version <= 5)) db.exec(m.sql);
    db.pragma('user_version = 5');
    db.pragma('foreign_keys = ON');
    const svc = db.prepare('INSERT INTO services (name, active, comment, updated_at, origin) VALUES (?, ?, ?, ?, ?)');
    svc.run('web', 1, 'applied here', '2025-01-01T10:00:00.000Z', 'local');
    svc.run('api', 0, 'pushed by a master', '2025-01-02T10:00:00.000Z', 'master');
    const comp = db.prepare("INSERT INTO components (service, name, runtime, image, cmd, env) VALUES (?, ?, 'container', ?, ?, ?)");
    comp.run('web', 'a', 'busybox:1', '["sleep","1"]', '{"K":"v"}');
    comp.run('web', 'b', 'busybox:2', '[]', '{}');
    comp.run('api', 'a', 'busybox:3', '["true"]', '{}');
    const inst = db.prepare("INSERT INTO instances (workload, service, component, runtime, handle, spec_hash, restarts, spec_json) VALUES (?, ?, ?, 'container', ?, ?, ?, ?)");
    inst.run('web-a', 'web', 'a', 'id-web-a', 'h1', 2, '{"image":"busybox:1"}');
    inst.run('api-a', 'api', 'a', 'id-api-a', 'h2', 0, null);
  } finally {
    db.close();
  }
}

const rows = (db: Database.Database, sql: string): unknown[] => db.prepare(sql).all();
const SERVICES = 'SELECT name, active, comment, updated_at, origin FROM services ORDER BY name';
const COMPONENTS = 'SELECT service, name, runtime, image, cmd, env, workload FROM components ORDER BY workload';
const INSTANCES = 'SELECT workload, service, component, runtime, handle, spec_hash, restarts, spec_json FROM instances ORDER BY workload';

describe('migration 006 (origin nats) on a registry at schema 5', () => {
  it('keeps every service, component and instance, the origins and the foreign key; accepts nats; checks pass', () => {
    const path = join(dir, 'agent.db');
    registryAt5(path);
    const old = new Database(path, { readonly: true });
    const before = { services: rows(old, SERVICES), components: rows(old, COMPONENTS), instances: rows(old, INSTANCES) };
    old.close();
    assert.equal(before.services.length, 2);
    assert.equal(before.components.length, 3);

    const r = Registry.open(path);
    try {
      assert.deepEqual(r.desired.readServices().map((s) => [s.name, s.origin, s.components.length]), [['api', 'master', 1], ['web', 'local', 2]]);
    } finally {
      r.close();
    }

    const db = new Database(path);
    try {
      assert.equal(db.pragma('user_version', { simple: true }), readMigrations().length);
      assert.deepEqual(rows(db, SERVICES), before.services, 'services, origins and update times kept');
      assert.deepEqual(rows(db, COMPONENTS), before.components, 'components kept with their service');
      assert.deepEqual(rows(db, INSTANCES), before.instances, 'instances kept');
      assert.deepEqual(db.pragma('foreign_key_check'), []);
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      // The rebuilt table's CHECK: nats is a third origin, anything else is still refused.
      db.prepare("INSERT INTO services (name, origin) VALUES ('fromnats', 'nats')").run();
      db.prepare("INSERT INTO components (service, name, runtime, image) VALUES ('fromnats', 'a', 'container', 'busybox:4')").run();
      assert.throws(() => db.prepare("INSERT INTO services (name, origin) VALUES ('other', 'ssh')").run(), /CHECK constraint failed/);
      // The components still reference the new table: a component without a service is refused,
      // and deleting a service still takes its components with it.
      db.pragma('foreign_keys = ON');
      assert.throws(() => db.prepare("INSERT INTO components (service, name, runtime, image) VALUES ('nosuch', 'a', 'container', 'x')").run(), /FOREIGN KEY constraint failed/);
      db.prepare("DELETE FROM services WHERE name = 'web'").run();
      assert.deepEqual(rows(db, "SELECT workload FROM components ORDER BY workload"), [{ workload: 'api-a' }, { workload: 'fromnats-a' }]);
      assert.match(String((db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'components'").get() as { sql: string }).sql), /REFERENCES services \(name\)|REFERENCES "services" \(name\)/);
    } finally {
      db.close();
    }
    const again = Registry.open(path);
    try {
      assert.deepEqual(again.desired.readServices().map((s) => [s.name, s.origin]), [['api', 'master'], ['fromnats', 'nats']]);
    } finally {
      again.close();
    }
  });
});
