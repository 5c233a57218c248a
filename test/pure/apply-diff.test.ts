// The apply diff: created / updated (with the fields) / unchanged / pruned / refused, by origin.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { diffDesired, type CurrentService, type Origin } from '../../src/manifest/diff.js';
import { loadManifestText } from '../../src/manifest/load.js';
import type { ServiceSpec } from '../../src/manifest/schema.js';

/** A container service: component name -> memory (MiB). */
function spec(name: string, comps: Record<string, number>, extra = ''): ServiceSpec {
  let toml = `name = "${name}"\nruntime = "container"\n${extra}\n`;
  for (const [c, mem] of Object.entries(comps)) toml += `[[components]]\nname = "${c}"\nimage = "localhost/x:1"\nmemory = ${mem}\nenv = { A = "1", B = "2" }\n`;
  return loadManifestText(toml, 'toml', 'test');
}

/** The registry's view of a service spec, with an origin. */
function current(s: ServiceSpec, origin: Origin = 'local'): CurrentService {
  return { name: s.name, active: s.active, comment: s.comment, origin, components: s.components.map((c) => ({ name: c.name, spec: c })) };
}

describe('apply diff: what changes', () => {
  it('a new service is created, an identical one unchanged', () => {
    const d = diffDesired([current(spec('web', { api: 64 }))], [spec('web', { api: 64 }), spec('db', { pg: 64 })], { origin: 'local', prune: 'none' });
    assert.deepEqual(d, { created: ['db'], updated: [], unchanged: ['web'], pruned: [], refused: [] });
  });

  it('an update names each changed field, components added and removed, and active', () => {
    const before = current(spec('web', { api: 64, old: 32 }));
    const d = diffDesired([before], [spec('web', { api: 96, x: 32 }, 'active = false')], { origin: 'local', prune: 'none' });
    assert.deepEqual(d.updated, [{ name: 'web', changes: ['active true → false', 'components added: x', 'components removed: old', 'components[api].memory 64 → 96'] }]);
  });

  it('env key order is not a change; a changed value is, named by its key', () => {
    const before = current(spec('web', { api: 64 }));
    const reordered = spec('web', { api: 64 });
    reordered.components[0]!.env = { B: '2', A: '1' };
    assert.deepEqual(diffDesired([before], [reordered], { origin: 'local', prune: 'none' }).unchanged, ['web']);
    reordered.components[0]!.env = { A: '1', B: '3' };
    assert.deepEqual(diffDesired([before], [reordered], { origin: 'local', prune: 'none' }).updated[0]!.changes, ['components[api].env.B 2 → 3']);
    reordered.components[0]!.env = { B: '2', C: '' };
    assert.deepEqual(diffDesired([before], [reordered], { origin: 'local', prune: 'none' }).updated[0]!.changes, ['components[api].env.A removed', 'components[api].env.C added']);
  });

  it('an invalid registry row is replaced, and says so', () => {
    const before: CurrentService = { name: 'web', active: true, comment: '', origin: 'local', components: [{ name: 'api', invalid: 'env.A: values must be strings' }] };
    const d = diffDesired([before], [spec('web', { api: 64 })], { origin: 'local', prune: 'none' });
    assert.match(d.updated[0]!.changes[0]!, /components\[api\] replaces an invalid registry row \(env\.A/);
  });
});

describe('apply diff: origin and prune', () => {
  const local = current(spec('mine', { a: 64 }), 'local');
  const pushed = current(spec('pushed', { a: 64 }), 'master');
  const gone = current(spec('gone', { a: 64 }), 'master');

  it("a master's prune deletes only master services absent from the set", () => {
    const d = diffDesired([local, pushed, gone], [spec('pushed', { a: 64 })], { origin: 'master', prune: 'same-origin' });
    assert.deepEqual(d, { created: [], updated: [], unchanged: ['pushed'], pruned: ['gone'], refused: [] });
  });

  it('a plain prune makes the registry hold exactly the set, whatever the origin', () => {
    const d = diffDesired([local, pushed, gone], [spec('pushed', { a: 64 })], { origin: 'local', prune: 'all' });
    assert.deepEqual(d.pruned, ['mine', 'gone']);
    assert.deepEqual(d.updated, [{ name: 'pushed', changes: ['origin master → local'] }]);
  });

  it('a master over SSH naming a service from the NATS bucket is refused, naming it', () => {
    const d = diffDesired([current(spec('fromkv', { web: 64 }), 'nats')], [spec('fromkv', { web: 96 })], { origin: 'master', prune: 'none' });
    assert.deepEqual(d.refused, [{ name: 'fromkv', rule: "service fromkv comes from the fleet's NATS bucket on this node: change or delete its key there first" }]);
  });

  it('a master naming a local service is refused, naming it', () => {
    const d = diffDesired([local], [spec('mine', { a: 64 })], { origin: 'master', prune: 'same-origin' });
    assert.deepEqual(d.refused, [{ name: 'mine', rule: 'service mine was applied locally on this node: delete it there first' }]);
    assert.deepEqual(d.unchanged, []);
  });

  it('without prune nothing is pruned', () => {
    assert.deepEqual(diffDesired([local, gone], [], { origin: 'master', prune: 'none' }).pruned, []);
  });
});
