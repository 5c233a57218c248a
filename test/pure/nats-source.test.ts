// The NATS source's decisions: what one bucket entry does (apply, delete, refuse, ignore), where a
// watch starts (resume or re-list), and what a re-list deletes. Pure: no server, no registry.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { Origin } from '../../src/manifest/diff.js';
import { decideEntry, relistDeletes, watchStart, type SourceEntry } from '../../src/nats/decide.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const entry = (key: string, value: unknown, operation: SourceEntry['operation'] = 'PUT', revision = 7): SourceEntry => ({ key, revision, operation, value: enc(value) });
const svc = (name: string): unknown => ({ name, runtime: 'container', components: [{ name: 'a', image: 'busybox', cmd: ['sleep', '1'] }] });
const ctx = (owners: Record<string, Origin> = {}) => ({ node: 'n1', originOf: (s: string) => owners[s], imagesDirs: ['/var/images'] });

describe('nats source: one entry', () => {
  it('a valid manifest for an absent or nats service is applied', () => {
    const d = decideEntry(entry('desired.n1.web', svc('web')), ctx());
    assert.equal(d.kind, 'apply');
    assert.equal(decideEntry(entry('desired.n1.web', svc('web')), ctx({ web: 'nats' })).kind, 'apply');
  });
  it('refuses a value that is not JSON, fails the schema, or names another service', () => {
    const notJson = decideEntry(entry('desired.n1.web', '{oops'), ctx());
    assert.equal(notJson.kind, 'refuse');
    const bad = decideEntry(entry('desired.n1.web', { name: 'web', components: [] }), ctx());
    assert.ok(bad.kind === 'refuse' && /components/.test(bad.error), JSON.stringify(bad));
    const other = decideEntry(entry('desired.n1.web', svc('api')), ctx());
    assert.ok(other.kind === 'refuse' && /must equal the key's service 'web'/.test(other.error), JSON.stringify(other));
  });
  it('refuses bytes that are not UTF-8', () => {
    const d = decideEntry({ key: 'desired.n1.web', revision: 1, operation: 'PUT', value: new Uint8Array([0xff, 0xfe]) }, ctx());
    assert.equal(d.kind, 'refuse');
  });
  it('never replaces a local or master service: a collision', () => {
    for (const owner of ['local', 'master'] as const) {
      const d = decideEntry(entry('desired.n1.web', svc('web')), ctx({ web: owner }));
      assert.ok(d.kind === 'refuse' && /collision/.test(d.error) && d.error.includes(owner), JSON.stringify(d));
    }
  });
  it('refuses VM boot files outside the allowed image directories, as apply does', () => {
    const vm = { name: 'vm', runtime: 'unikernel', components: [{ name: 'a', kernel: '/etc/passwd', initrd: 'initrd.gz', memory: 128 }] };
    const d = decideEntry(entry('desired.n1.vm', vm), ctx());
    assert.ok(d.kind === 'refuse' && /allowed image directory/.test(d.error), JSON.stringify(d));
  });
  it('a deleted or purged key deletes only a service of origin nats', () => {
    for (const op of ['DEL', 'PURGE'] as const) {
      assert.deepEqual(decideEntry(entry('desired.n1.web', '', op), ctx({ web: 'nats' })), { kind: 'delete', service: 'web' });
      assert.equal(decideEntry(entry('desired.n1.web', '', op), ctx({ web: 'local' })).kind, 'ignore');
      assert.equal(decideEntry(entry('desired.n1.web', '', op), ctx()).kind, 'ignore');
    }
  });
  it("ignores another node's key and keys of other shapes", () => {
    assert.equal(decideEntry(entry('desired.n2.web', svc('web')), ctx()).kind, 'ignore');
    assert.equal(decideEntry(entry('status.n1', {}), ctx()).kind, 'ignore');
  });
});

describe('nats source: where a watch starts', () => {
  const stream = { created: '2024-01-01T00:00:00Z', firstSeq: 1, lastSeq: 50 };
  it('re-lists without a stored revision', () => {
    assert.equal(watchStart(undefined, stream).mode, 'relist');
  });
  it('resumes after the stored revision of the same stream', () => {
    assert.deepEqual(watchStart({ stream_created: stream.created, revision: 42 }, stream), { mode: 'resume', from: 43 });
    assert.deepEqual(watchStart({ stream_created: stream.created, revision: 50 }, stream), { mode: 'resume', from: 51 });
  });
  it('re-lists when the bucket was recreated, or is behind us', () => {
    assert.match((watchStart({ stream_created: 'other', revision: 42 }, stream) as { reason: string }).reason, /recreated/);
    assert.match((watchStart({ stream_created: stream.created, revision: 60 }, stream) as { reason: string }).reason, /behind/);
  });
  it('re-lists when the revision after ours is gone; an empty stream loses nothing', () => {
    assert.match((watchStart({ stream_created: stream.created, revision: 3 }, { ...stream, firstSeq: 10 }) as { reason: string }).reason, /gone/);
    assert.equal(watchStart({ stream_created: stream.created, revision: 50 }, { ...stream, firstSeq: 51 }).mode, 'resume');
    assert.equal(watchStart({ stream_created: stream.created, revision: 9 }, { ...stream, firstSeq: 10 }).mode, 'resume');
  });
  it('a position written mid-re-list names no stream: the next start re-lists again', () => {
    assert.equal(watchStart({ stream_created: `relisting:${stream.created}`, revision: 20 }, stream).mode, 'relist');
  });
  it('a re-list deletes the services of origin nats that no key names', () => {
    assert.deepEqual(relistDeletes(['c', 'a', 'b'], ['b']), ['a', 'c']);
    assert.deepEqual(relistDeletes([], ['b']), []);
  });
});

describe('nats source: settings', () => {
  it('defaults the bucket and the node; refuses a node with a dot and unreadable files, naming the field', async () => {
    const { ConfigSchema, natsSettings, natsFileIssues } = await import('../../src/config/config.js');
    const cfg = ConfigSchema.parse({ source: { nats: { urls: ['nats://127.0.0.1:4222'] } } });
    const n = natsSettings(cfg)!;
    assert.equal(n.bucket, 'mcp-fleet');
    assert.ok(!n.node.includes('.'));
    assert.equal(natsSettings(ConfigSchema.parse({})), undefined);
    const bad = ConfigSchema.safeParse({ source: { nats: { urls: ['nats://127.0.0.1:4222'], node: 'web1.example.org' } } });
    assert.ok(!bad.success && bad.error.issues.some((i) => i.path.join('.') === 'source.nats.node'));
    const issues = natsFileIssues({ ...n, creds: '/nonexistent/nx.creds', tls: { cert: '/nonexistent/c.pem' } });
    assert.deepEqual(issues.map((i) => i.field), ['source.nats.creds', 'source.nats.tls.cert', 'source.nats.tls']);
  });
});
