// Migration 005 on real SQLite: the spec an instance was started or adopted from is kept beside
// its hash, read back as an object; an older registry (read as it is by a dry run) has none.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { canonicalJson } from '../../src/identity.js';
import { Registry } from '../../src/registry/index.js';
import { readMigrations } from '../../src/registry/open.js';
import { spec } from '../helpers/spec.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-instance-spec-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const key = { service: 'web', component: 'api', runtime: 'container' };

describe('instances keep the spec they run', () => {
  it('a start and an adoption store the spec of their hash; a new start replaces it', () => {
    const r = Registry.open(join(dir, 'a.db'));
    try {
      const s64 = spec('web', 'api', { memory: 64 });
      r.instances.recordStarted({ workload: 'web-api', ...key, handle: 'id1', specHash: 'h64', spec: canonicalJson(s64), restarted: false });
      assert.deepEqual(r.instances.all()[0]!.spec, JSON.parse(canonicalJson(s64)));
      const s96 = spec('web', 'api', { memory: 96 });
      r.instances.recordAdopted({ workload: 'web-api', ...key, handle: 'id2', specHash: 'h96', spec: canonicalJson(s96), startedAt: null });
      const rec = r.instances.all()[0]!;
      assert.equal(rec.specHash, 'h96');
      assert.equal(rec.spec?.memory, 96);
      r.instances.recordStarted({ workload: 'web-api', ...key, handle: 'id3', specHash: 'h?', restarted: false });
      assert.equal(r.instances.all()[0]!.spec, null, 'a start without a spec leaves none: never the spec of another hash');
    } finally {
      r.close();
    }
  });

  it('the column refuses what is not a JSON object', () => {
    const path = join(dir, 'b.db');
    Registry.open(path).close();
    const db = new Database(path);
    try {
      assert.throws(() => db.prepare("INSERT INTO instances (workload, service, component, runtime, spec_json) VALUES ('x', 's', 'c', 'container', '[1]')").run(), /CHECK constraint failed/);
    } finally {
      db.close();
    }
  });

  it('a registry at schema 4, read as it is, has no spec', () => {
    const path = join(dir, 'c.db');
    const db = new Database(path);
    for (const m of readMigrations().filter((x) => x.version <= 4)) db.exec(m.sql);
    db.pragma('user_version = 4');
    db.prepare("INSERT INTO instances (workload, service, component, runtime, handle, spec_hash) VALUES ('web-api', 'web', 'api', 'container', 'id1', 'h')").run();
    db.close();
    const r = Registry.open(path, { readonly: true, asIs: true });
    try {
      assert.equal(r.instances.all()[0]!.spec, null);
    } finally {
      r.close();
    }
  });
});
