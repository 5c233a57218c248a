// The master's pure parts: argv quoting, inventory validation, placement, host keys, merging.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { commandLine, shellQuote } from '../../src/fleet/quote.js';
import { loadInventory, selectNodes } from '../../src/fleet/inventory.js';
import { place, splitManifest } from '../../src/fleet/placement.js';
import { hostKeysFromKnownHosts, fingerprint, keyBlobOf } from '../../src/fleet/host-keys.js';
import { mergeByTime, parseTimeout, type NodeEvent } from '../../src/fleet/operations.js';

const dir = mkdtempSync(join(tmpdir(), 'fleet-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'k'), 'PRIVATE');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmZaboi3CkxzVeqs8TBYMrk3OvYrB9Zz7H0JQiUx7xR';

function inventory(text: string, name = 'inv.toml'): ReturnType<typeof loadInventory> {
  writeFileSync(join(dir, name), text);
  return loadInventory(join(dir, name));
}
function invalid(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err;
  }
  assert.fail('expected a ValidationError');
}

describe('shell quoting', () => {
  it('a word stays one word, whatever it holds', () => {
    for (const w of ['plain', "it's", '$(rm -rf /)', '`x`', 'a b', '"q"', '', '\\', "''", '; echo hi', '\n']) {
      const out = execFileSync('sh', ['-c', `printf '%s\\0' ${shellQuote(w)}`]).toString();
      assert.equal(out, `${w}\0`, JSON.stringify(w));
    }
    assert.equal(commandLine(['agent', '--db', "/x y/'z"]), `'agent' '--db' '/x y/'\\''z'`);
    assert.throws(() => shellQuote('a\0b'));
  });
});

describe('inventory', () => {
  it('resolves defaults, paths relative to the file, labels merged', () => {
    const inv = inventory(`[defaults]\nkey = "k"\nuser = "ops"\nlabels = { region = "eu" }\n[[nodes]]\nname = "a"\nhost = "10.0.0.2"\nhost_key = "${KEY} c"\nlabels = { role = "edge" }\n[[nodes]]\nname = "b"\nhost = "h"\nport = 2222\nagent = ["agent", "--db", "/d"]\n`);
    const [a, b] = inv.nodes;
    assert.equal(a!.port, 22);
    assert.equal(a!.user, 'ops');
    assert.equal(a!.keyPath, join(dir, 'k'));
    assert.deepEqual(a!.hostKeys, [`${KEY} c`]);
    assert.deepEqual(a!.agent, ['agent']);
    assert.deepEqual(a!.labels, { region: 'eu', role: 'edge' });
    assert.deepEqual(b!.agent, ['agent', '--db', '/d']);
    assert.deepEqual(b!.hostKeys, []);
  });
  it('reads the pinned key from a known_hosts file', () => {
    writeFileSync(join(dir, 'known'), `# c\nh,other ${KEY}\n[h]:2222 ${KEY}\n`);
    const inv = inventory(`[[nodes]]\nname = "a"\nhost = "h"\nkey = "k"\nhost_key = "known"\nport = 2222\n`);
    assert.deepEqual(inv.nodes[0]!.hostKeys, [KEY]);
  });
  it('names each bad field', () => {
    const e = invalid(() => inventory(`[[nodes]]\nname = "A"\nhost = "h"\nkey = "k"\nport = 0\nlabel = {}\n`));
    assert.ok(e.source.includes('inv.toml'));
    const fields = e.issues.map((i) => i.field).sort();
    assert.deepEqual(fields, ['nodes[0].label', 'nodes[0].name', 'nodes[0].port']);
    assert.match(e.issues.find((i) => i.field === 'nodes[0].label')!.rule, /did you mean `labels`/);
    invalid(() => inventory(`[[nodes]]\nname = "a"\nhost = "h"\n`));
    invalid(() => inventory(`nodes = []\n`));
  });
  it('--nodes with an unknown name and --selector both pick or refuse', () => {
    const inv = inventory(`[defaults]\nkey = "k"\n[[nodes]]\nname = "a"\nhost = "h"\nlabels = { role = "edge" }\n[[nodes]]\nname = "b"\nhost = "h"\n`);
    assert.deepEqual(selectNodes(inv, { selector: 'role=edge' }).map((n) => n.name), ['a']);
    assert.deepEqual(selectNodes(inv, { nodes: 'b' }).map((n) => n.name), ['b']);
    assert.match(invalid(() => selectNodes(inv, { nodes: 'a,zz' })).message, /--nodes: names unknown node\(s\) zz/);
  });
});

describe('placement', () => {
  const inv = (): ReturnType<typeof loadInventory> =>
    inventory(`[defaults]\nkey = "k"\n[[nodes]]\nname = "a"\nhost = "h"\nlabels = { role = "edge" }\n[[nodes]]\nname = "b"\nhost = "h"\nlabels = { role = "edge", region = "eu" }\n[[nodes]]\nname = "c"\nhost = "h"\n`, 'p.toml');
  const svc = (name: string, where: Record<string, unknown>): ReturnType<typeof splitManifest> =>
    splitManifest({ name, ...where, components: [{ name: 'c', runtime: 'container', image: 'busybox' }] }, `${name}.toml`);

  it('names and selector give the union; the node gets the manifest without them', () => {
    const s = svc('web', { nodes: ['c'], selector: { role: 'edge', region: 'eu' } });
    assert.deepEqual(Object.keys(s.manifest).sort(), ['components', 'name']);
    const per = place([s, svc('api', { selector: { role: 'edge' } })], inv().nodes);
    assert.deepEqual([...per].map(([n, l]) => [n, l.map((x) => x.name)]), [['a', ['api']], ['b', ['web', 'api']], ['c', ['web']]]);
  });
  it('an unknown node, no placement, or a service placed nowhere are errors', () => {
    assert.match(invalid(() => place([svc('x', { nodes: ['zz'] })], inv().nodes)).message, /x\.toml: nodes\[0\]: names node 'zz'/);
    assert.match(invalid(() => place([svc('x', { selector: { role: 'db' } })], inv().nodes)).message, /places service 'x' on no node/);
    assert.equal(place([svc('x', { selector: { role: 'db' } })], inv().nodes, { allowUnplaced: true }).get('a')!.length, 0);
    assert.match(invalid(() => svc('x', {})).message, /nodes: or selector is required/);
    assert.match(invalid(() => svc('x', { nodes: 'a' })).message, /nodes: must be an array of node names/);
  });
});

describe('host keys, durations, event merge', () => {
  it('fingerprints like ssh-keygen and finds hashed known_hosts entries', () => {
    writeFileSync(join(dir, 'hk.pub'), `${KEY} x\n`);
    const want = execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'hk.pub')]).toString().split(' ')[1];
    assert.equal(fingerprint(keyBlobOf(KEY)), want);
    writeFileSync(join(dir, 'kh'), `[10.1.2.3]:2222 ${KEY}\n`);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', join(dir, 'kh')], { stdio: 'ignore' });
    assert.deepEqual(hostKeysFromKnownHosts(String(execFileSync('cat', [join(dir, 'kh')])), '10.1.2.3', 2222), [KEY]);
    assert.deepEqual(hostKeysFromKnownHosts(String(execFileSync('cat', [join(dir, 'kh')])), '10.1.2.4', 2222), []);
  });
  it('parses durations and merges events newest first', () => {
    assert.equal(parseTimeout('30s'), 30_000);
    assert.equal(parseTimeout('500ms'), 500);
    assert.equal(parseTimeout('2m'), 120_000);
    assert.equal(parseTimeout('x'), undefined);
    assert.equal(parseTimeout('1h30m'), 5_400_000, 'compounds, as every other duration flag takes them');
    assert.equal(parseTimeout('45'), 45_000, 'a bare number is seconds, as before');
    assert.equal(parseTimeout('0s'), undefined);
    assert.equal(parseTimeout('2d'), undefined, 'at most a day');
    const ev = (node: string, at: string): NodeEvent => ({ node, at, service: null, component: null, workload: null, action: 'a', reason: '', outcome: 'ok', message: '' });
    const merged = mergeByTime([[ev('a', '2026-01-01T00:00:03Z'), ev('a', '2026-01-01T00:00:01Z')], [ev('b', '2026-01-01T00:00:02Z')]], 2);
    assert.deepEqual(merged.map((e) => e.node + e.at.slice(-3)), ['a03Z', 'b02Z']);
  });
});
