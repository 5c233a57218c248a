// The master's NATS decisions without a server: which keys a node's set creates, updates, leaves
// or deletes (with the revisions they were planned against), and how a status value is judged.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigSchema } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { loadInventory, loadNatsInventory } from '../../src/fleet/inventory.js';
import { expectError } from '../helpers/expect-error.js';
import { manifestValue, planNodeKeys, type StoredEntry } from '../../src/fleet/nats-plan.js';
import { judgeFleet, judgeNode, needsAttention } from '../../src/fleet/nats-status.js';
import { checkBucket, parseNatsUrls } from '../../src/fleet/nats-client.js';
import { nodeSummary } from '../helpers/nats-server.js';

const manifest = (name: string, image = 'img:1'): Record<string, unknown> => ({ name, components: [{ name: 'c', runtime: 'container', image }] });
const stored = (entries: Record<string, [number, unknown]>): Map<string, StoredEntry> =>
  new Map(Object.entries(entries).map(([k, [revision, v]]) => [k, { revision, value: typeof v === 'string' ? v : manifestValue(v) }]));

describe('planNodeKeys: the key-set diff of one node', () => {
  it('creates missing keys, leaves equal ones, updates changed ones against their revision, deletes the rest', () => {
    const p = planNodeKeys('a', [{ name: 'web', manifest: manifest('web') }, { name: 'api', manifest: manifest('api', 'img:2') }, { name: 'new', manifest: manifest('new') }], stored({ web: [3, manifest('web')], api: [4, manifest('api')], old: [5, manifest('old')] }), { allowEmpty: false });
    assert.equal(p.refused, undefined);
    assert.deepEqual(p.ops.map((o) => [o.op, o.key, 'revision' in o ? o.revision : null]), [
      ['unchanged', 'desired.a.web', 3],
      ['update', 'desired.a.api', 4],
      ['create', 'desired.a.new', null],
      ['delete', 'desired.a.old', 5],
    ]);
    const upd = p.ops[1]!;
    assert.ok(upd.op === 'update');
    assert.deepEqual(upd.changes, ['components[c].image img:1 → img:2']);
    assert.deepEqual(JSON.parse(upd.value), manifest('api', 'img:2'));
  });

  it('a stored value equal but differently written (key order, spacing) is unchanged: nothing rewritten', () => {
    const text = '{ "components": [ { "image": "img:1", "runtime": "container", "name": "c" } ], "name": "web" }';
    const p = planNodeKeys('a', [{ name: 'web', manifest: manifest('web') }], stored({ web: [9, text] }), { allowEmpty: false });
    assert.deepEqual(p.ops.map((o) => o.op), ['unchanged']);
  });

  it('a stored value that is not JSON or not a manifest is overwritten, saying so', () => {
    const p = planNodeKeys('a', [{ name: 'x', manifest: manifest('x') }, { name: 'y', manifest: manifest('y') }], stored({ x: [1, 'garbage'], y: [2, { name: 'y' }] }), { allowEmpty: false });
    assert.deepEqual(p.ops.map((o) => (o.op === 'update' ? o.changes : o.op)), [['value (the stored one is not JSON)'], ['value (the stored one is not a valid manifest)']]);
  });

  it('values are canonical JSON: equal manifests give equal bytes whatever their key order', () => {
    assert.equal(manifestValue({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it('an emptied node is refused without allowEmpty (naming its keys), pruned with it; empty and keyless is fine', () => {
    const keys = stored({ web: [3, manifest('web')], api: [4, manifest('api')] });
    const refused = planNodeKeys('b', [], keys, { allowEmpty: false });
    assert.deepEqual(refused.ops, []);
    assert.match(refused.refused!, /--allow-empty.*desired\.b\.api, desired\.b\.web/);
    assert.deepEqual(planNodeKeys('b', [], keys, { allowEmpty: true }).ops.map((o) => [o.op, o.service]), [['delete', 'api'], ['delete', 'web']]);
    assert.deepEqual(planNodeKeys('b', [], new Map(), { allowEmpty: false }), { node: 'b', ops: [] });
  });
});

describe('judgeNode / judgeFleet: a node\'s status.<node> as the master sees it', () => {
  const now = Date.parse('2025-01-01T00:10:00Z');
  const entry = (v: unknown, revision = 1): StoredEntry => ({ revision, value: typeof v === 'string' ? v : JSON.stringify(v) });
  const at = (ageSeconds: number): ReturnType<typeof nodeSummary> => ({ ...nodeSummary('a'), at: new Date(now - ageSeconds * 1000).toISOString() });

  it('reporting up to 30 s after the heartbeat, stale after, with the last summary kept', () => {
    assert.equal(judgeNode('a', entry(at(30)), { now, inInventory: true }).state, 'reporting');
    const stale = judgeNode('a', entry(at(31)), { now, inInventory: true });
    assert.deepEqual([stale.state, stale.ok, stale.value?.inSync], ['stale', false, 1]);
    assert.match(stale.error!, /last heartbeat 31s ago \(stale after 30s\)/);
  });

  it('no key is never-reported; not JSON, not a summary, or a bad time is unparsable, naming the key', () => {
    assert.equal(judgeNode('c', undefined, { now, inInventory: true }).state, 'never-reported');
    assert.match(judgeNode('a', entry('{oops', 4), { now, inInventory: true }).error!, /status\.a is not JSON \(revision 4\)/);
    assert.match(judgeNode('a', entry({ node: 'a' }), { now, inInventory: true }).error!, /status\.a is not a node summary .*agent_id/);
    assert.match(judgeNode('a', entry({ ...at(0), at: 'yesterday' }), { now, inInventory: true }).error!, /at must be an ISO time/);
  });

  it('counts in-sync apart from every other drift state; --check wants reporting, nothing drifted, no refused key', () => {
    const drifted = judgeNode('a', entry({ ...at(0), counts: { 'in-sync': 2, missing: 1, 'spec-changed': 2 } }), { now, inInventory: true });
    assert.deepEqual([drifted.value?.inSync, drifted.value?.drifted], [2, 3]);
    assert.equal(needsAttention(drifted), true);
    assert.equal(needsAttention(judgeNode('a', entry(at(0)), { now, inInventory: true })), false);
    const refused = judgeNode('a', entry({ ...at(0), source: { applied_revision: 3, rejected: [{ key: 'desired.a.x', revision: 3, error: 'bad' }] } }), { now, inInventory: true });
    assert.equal(needsAttention(refused), true);
  });

  it('keeps inventory order, then (unselected) other reporting nodes by name', () => {
    const statuses = new Map([['z', entry(at(0))], ['b', entry(at(0))], ['y', entry(at(0))]]);
    const all = judgeFleet(['b', 'a'], statuses, { now, others: true, inventory: new Set(['a', 'b']) });
    assert.deepEqual(all.map((r) => [r.node, r.state, r.inInventory]), [['b', 'reporting', true], ['a', 'never-reported', true], ['y', 'reporting', false], ['z', 'reporting', false]]);
    assert.deepEqual(judgeFleet(['b'], statuses, { now, others: false, inventory: new Set(['a', 'b']) }).map((r) => r.node), ['b']);
  });
});

describe('loadNatsInventory: the same file, names and labels only', () => {
  const withFile = (text: string, fn: (path: string) => void): void => {
    const dir = mkdtempSync(join(tmpdir(), 'nats-master-inv-'));
    try {
      writeFileSync(join(dir, 'inv.toml'), text);
      fn(join(dir, 'inv.toml'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('needs no host or key (the SSH loader does), and reads no key file it names', () => {
    withFile('[defaults]\nkey = "missing-key"\nlabels = { region = "eu" }\n[[nodes]]\nname = "a"\nlabels = { role = "edge" }\n[[nodes]]\nname = "b"\nhost = "10.0.0.2"\n', (path) => {
      assert.deepEqual(loadNatsInventory(path).nodes, [{ name: 'a', labels: { region: 'eu', role: 'edge' } }, { name: 'b', labels: { region: 'eu' } }]);
      expectError(() => loadInventory(path), { type: ValidationError, message: /nodes\[0\]\.host/ });
    });
  });

  it('still refuses unknown fields, bad values and duplicate names, naming them', () => {
    withFile('[[nodes]]\nname = "a"\nhots = "x"\n', (path) => expectError(() => loadNatsInventory(path), { type: ValidationError, message: /hots/ }));
    withFile('[[nodes]]\nname = "a"\nport = "22"\n', (path) => expectError(() => loadNatsInventory(path), { type: ValidationError, message: /nodes\[0\]\.port: must be a number/ }));
    withFile('[[nodes]]\nname = "a"\n[[nodes]]\nname = "a"\n', (path) => expectError(() => loadNatsInventory(path), { type: ValidationError, message: /nodes\[1\]\.name: duplicates nodes\[0\]\.name 'a'/ }));
  });
});

describe('one rule at both ends: the agent\'s source.nats settings and the master\'s --nats / --bucket', () => {
  const settingsTake = (nats: Record<string, unknown>): boolean => ConfigSchema.safeParse({ source: { nats } }).success;
  const masterTakes = (f: () => unknown): boolean => {
    try {
      f();
      return true;
    } catch (err) {
      assert.ok(err instanceof ValidationError, String(err));
      return false;
    }
  };
  it('a server URL either end takes, the other takes too', () => {
    const cases: Array<[string, boolean]> = [['nats://127.0.0.1:4222', true], ['tls://nats.example.org:4222', true], ['10.0.0.1:4222', true], ['nats://user@h:4222', true], ['nats://[::1]:4222', true], ['http://x/y', false], ['nats://h:4222/path', false], ['nats://h 1:4222', false], ['', false]];
    for (const [url, ok] of cases) {
      assert.equal(settingsTake({ urls: [url] }), ok, `settings: ${url}`);
      assert.equal(masterTakes(() => parseNatsUrls(url)), ok, `--nats: ${url}`);
    }
  });
  it('a bucket name either end takes, the other takes too', () => {
    for (const [bucket, ok] of [['mcp-fleet', true], ['a_b-9', true], ['a.b', false], ['a b', false], ['x'.repeat(65), false]] as const) {
      assert.equal(settingsTake({ urls: ['nats://h:4222'], bucket }), ok, `settings: ${bucket}`);
      assert.equal(masterTakes(() => checkBucket(bucket)), ok, `--bucket: ${bucket}`);
    }
  });
});
