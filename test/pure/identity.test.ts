// Workload names, labels and spec hashes: how a component is recognised in the outside world.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  canonicalJson,
  LABEL_AGENT,
  LABEL_COMPONENT,
  LABEL_SPEC_HASH,
  labelsFor,
  parseComponentLabel,
  specHash,
  workloadName,
} from '../../src/identity.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';

function spec(over: Partial<ComponentSpec> = {}): ComponentSpec {
  return {
    service: 'web',
    name: 'api',
    runtime: 'container',
    image: 'localhost/busybox:1',
    cmd: ['sh', '-c', 'sleep 1000'],
    env: { A: '1', B: '2', C: '3' },
    memory: 64,
    vcpus: undefined,
    network: 'none',
    ports: [],
    volumes: [],
    restart: 'always',
    ...over,
  };
}

describe('specHash', () => {
  it('is a sha256 hex digest and deterministic', () => {
    const h = specHash(spec());
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(specHash(spec()), h);
  });

  it('does not depend on the order of env keys', () => {
    const a = specHash(spec({ env: { A: '1', B: '2', C: '3' } }));
    const b = specHash(spec({ env: { C: '3', A: '1', B: '2' } }));
    assert.equal(a, b);
  });

  it('does not depend on the key order of the spec object itself', () => {
    const s = spec();
    const reordered = Object.fromEntries(Object.entries(s).reverse()) as ComponentSpec;
    assert.equal(specHash(reordered), specHash(s));
  });

  it('changes when a field that shapes the running workload changes', () => {
    const base = specHash(spec());
    const variants: Record<string, Partial<ComponentSpec>> = {
      image: { image: 'localhost/busybox:2' },
      cmd: { cmd: ['sh', '-c', 'sleep 1001'] },
      'cmd order': { cmd: ['-c', 'sh', 'sleep 1000'] },
      'env value': { env: { A: '1', B: '2', C: '4' } },
      'env key added': { env: { A: '1', B: '2', C: '3', D: '' } },
      memory: { memory: 128 },
      'memory removed': { memory: undefined },
      vcpus: { vcpus: 2 },
      runtime: { runtime: 'unikernel' },
      network: { network: 'auto' },
      ports: { ports: [{ guest: 80, host: 8080, protocol: 'tcp' }] },
      volumes: { volumes: [{ source: '/srv/a', target: '/a', read_only: false }] },
    };
    const seen = new Set<string>([base]);
    for (const [what, over] of Object.entries(variants)) {
      const h = specHash(spec(over));
      assert.notEqual(h, base, `${what} should change the hash`);
      seen.add(h);
    }
    assert.equal(seen.size, Object.keys(variants).length + 1, 'every variant hashes differently');
  });

  it('does not change with the restart policy (nor service/name, which only name the workload)', () => {
    const base = specHash(spec({ restart: 'always' }));
    assert.equal(specHash(spec({ restart: 'on-failure' })), base);
    assert.equal(specHash(spec({ restart: 'never' })), base);
  });

  it('distinguishes cmd split differently into arguments', () => {
    assert.notEqual(specHash(spec({ cmd: ['a b'] })), specHash(spec({ cmd: ['a', 'b'] })));
  });
});

describe('canonicalJson', () => {
  it('sorts object keys at every level', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it('gives the same text for objects differing only in key order', () => {
    assert.equal(canonicalJson({ x: 1, y: { p: 'q', o: 'r' } }), canonicalJson({ y: { o: 'r', p: 'q' }, x: 1 }));
  });

  it('keeps array order', () => {
    assert.equal(canonicalJson([3, 1, 2]), '[3,1,2]');
    assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
  });

  it('drops undefined properties, so absent and undefined serialise the same', () => {
    assert.equal(canonicalJson({ a: 1, b: undefined }), '{"a":1}');
    assert.equal(canonicalJson({ a: 1, b: undefined }), canonicalJson({ a: 1 }));
  });

  it('serialises scalars like JSON, and undefined as null', () => {
    assert.equal(canonicalJson('he said "hi"'), '"he said \\"hi\\""');
    assert.equal(canonicalJson(42), '42');
    assert.equal(canonicalJson(true), 'true');
    assert.equal(canonicalJson(null), 'null');
    assert.equal(canonicalJson(undefined), 'null');
    assert.equal(canonicalJson({}), '{}');
    assert.equal(canonicalJson([]), '[]');
  });

  it('escapes keys', () => {
    assert.equal(canonicalJson({ 'a"b': 1 }), '{"a\\"b":1}');
  });

  it('is valid JSON that round-trips to an equal value', () => {
    const v = { z: [1, 'two', { k: false }], a: { nested: { deep: 'x' } } };
    assert.deepEqual(JSON.parse(canonicalJson(v)), v);
  });
});

describe('workloadName', () => {
  it('joins service and component with a dash', () => {
    assert.equal(workloadName({ service: 'web', component: 'api' }), 'web-api');
    assert.equal(workloadName({ service: 'a-b', component: 'c' }), 'a-b-c');
  });
});

describe('parseComponentLabel', () => {
  it('parses service/component', () => {
    assert.deepEqual(parseComponentLabel('web/api'), { service: 'web', component: 'api' });
    assert.deepEqual(parseComponentLabel('a1-b/c-2'), { service: 'a1-b', component: 'c-2' });
  });

  it('rejects anything that is not a service/component pair', () => {
    const junk: Array<string | undefined> = [
      undefined,
      '',
      'web',
      'web/',
      '/api',
      '/',
      'a/b/c',
      'Web/api',
      'web/API',
      '-web/api',
      'web/-api',
      'web api/x',
      'web/api ',
      ' web/api',
      '../etc/passwd',
      'web\\api',
      'web/api\n',
      'web/a_b',
    ];
    for (const j of junk) assert.equal(parseComponentLabel(j), undefined, JSON.stringify(j));
  });

  it('round-trips the label written by labelsFor', () => {
    const key = { service: 'web', component: 'api' };
    assert.deepEqual(parseComponentLabel(labelsFor('agent-1', key, 'h')[LABEL_COMPONENT]), key);
  });
});

describe('labelsFor', () => {
  it('labels the owning agent, the component and the spec hash', () => {
    const hash = specHash(spec());
    assert.deepEqual(labelsFor('agent-123', { service: 'web', component: 'api' }, hash), {
      'io.mcp-agent.agent': 'agent-123',
      'io.mcp-agent.component': 'web/api',
      'io.mcp-agent.spec-hash': hash,
    });
  });

  it('uses the exported label names', () => {
    assert.equal(LABEL_AGENT, 'io.mcp-agent.agent');
    assert.equal(LABEL_COMPONENT, 'io.mcp-agent.component');
    assert.equal(LABEL_SPEC_HASH, 'io.mcp-agent.spec-hash');
    assert.deepEqual(Object.keys(labelsFor('a', { service: 's', component: 'c' }, 'h')).sort(), [LABEL_AGENT, LABEL_COMPONENT, LABEL_SPEC_HASH].sort());
  });
});
