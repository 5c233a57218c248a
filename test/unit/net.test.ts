// Bridge networking arithmetic (pure), and the generated ruleset checked by the real nft inside a
// throwaway namespace.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { bridgeSettings, loadConfig } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { gatewayOf, intToIp, ipToInt, isolationRuleset, parseSubnet, pickIp, removalRuleset, tapName, vmAddresses } from '../../src/net/plan.js';

describe('addresses', () => {
  it('converts addresses both ways and refuses junk', () => {
    assert.equal(ipToInt('10.99.0.1'), 0x0a630001);
    assert.equal(intToIp(0x0a6300fe), '10.99.0.254');
    for (const ip of ['0.0.0.0', '255.255.255.255', '192.168.77.2']) assert.equal(intToIp(ipToInt(ip)), ip);
    for (const bad of ['10.99.0.256', '10.99.0', 'a.b.c.d', '10.99.0.1.2']) assert.throws(() => ipToInt(bad), /not an IPv4 address/);
  });

  it('normalises a subnet and bounds its prefix', () => {
    assert.deepEqual(parseSubnet('10.99.0.7/24'), { network: ipToInt('10.99.0.0'), prefix: 24 });
    for (const bad of ['10.99.0.0/31', '10.99.0.0/32', '10.0.0.0/7', '10.99.0.0', 'x/24']) assert.throws(() => parseSubnet(bad));
  });

  it('gives the gateway the first address and VMs the rest, broadcast excluded', () => {
    const s = parseSubnet('10.99.0.0/24');
    assert.equal(gatewayOf(s), '10.99.0.1');
    const r = vmAddresses(s);
    assert.deepEqual([intToIp(r.first), intToIp(r.last)], ['10.99.0.2', '10.99.0.254']);
    const tiny = vmAddresses(parseSubnet('10.99.0.0/30'));
    assert.deepEqual([intToIp(tiny.first), intToIp(tiny.last)], ['10.99.0.2', '10.99.0.2']);
  });

  it('picks the lowest free address, and none when the subnet is full', () => {
    const s = parseSubnet('10.99.0.0/24');
    assert.equal(pickIp(s, new Set()), '10.99.0.2');
    assert.equal(pickIp(s, new Set(['10.99.0.2', '10.99.0.3', '10.99.0.5'])), '10.99.0.4');
    const all = new Set(Array.from({ length: 253 }, (_, i) => `10.99.0.${i + 2}`));
    assert.equal(pickIp(s, all), undefined);
    assert.equal(pickIp(parseSubnet('10.99.0.0/30'), new Set(['10.99.0.2'])), undefined);
  });
});

describe('TAP names', () => {
  it('are 15 characters, start with tap- (the bridge rule matches tap-*), and are stable per workload', () => {
    const a = tapName('web-vm');
    assert.equal(a.length, 15);
    assert.match(a, /^tap-[0-9a-f]{11}$/);
    assert.equal(tapName('web-vm'), a);
    assert.notEqual(tapName('web-vm2'), a);
  });
});

describe('the isolation ruleset', () => {
  const rs = isolationRuleset('br-x', '10.1.2.1', 'tbl');
  it('has the idempotent head for both families and the rules measured in HOST-FACTS', () => {
    assert.ok(rs.startsWith('table inet tbl\ndelete table inet tbl\ntable bridge tbl\ndelete table bridge tbl\n'));
    assert.match(rs, /iifname "br-x" ct state established,related accept/);
    assert.match(rs, /iifname "br-x" ip daddr 10\.1\.2\.1 accept/);
    assert.match(rs, /iifname "br-x" counter drop/);
    assert.match(rs, /oifname "br-x" counter drop/);
    assert.match(rs, /table bridge tbl \{[\s\S]*iifname "tap-\*" oifname "tap-\*" counter drop/);
    assert.equal(removalRuleset('tbl'), 'table inet tbl\ndelete table inet tbl\ntable bridge tbl\ndelete table bridge tbl\n');
  });

  it('loads into the real nft, twice (idempotent), and unloads', async (t) => {
    const nft = await execa('nft', ['--version'], { reject: false });
    if (nft.exitCode !== 0) return t.skip('nft is not installed');
    const ns = `agtunit-${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'agent-nft-'));
    t.after(async () => {
      await execa('ip', ['netns', 'del', ns], { reject: false });
      rmSync(dir, { recursive: true, force: true });
    });
    await execa('ip', ['netns', 'add', ns]);
    const file = join(dir, 'rules.nft');
    writeFileSync(file, isolationRuleset('mcp-br0', '10.99.0.1', 'mcp'));
    const inNs = (...a: string[]) => execa('ip', ['netns', 'exec', ns, 'nft', ...a]);
    await inNs('-c', '-f', file);
    await inNs('-f', file);
    await inNs('-f', file);
    const listed = (await inNs('list', 'tables')).stdout;
    assert.match(listed, /table inet mcp/);
    assert.match(listed, /table bridge mcp/);
    assert.equal((await inNs('list', 'chain', 'inet', 'mcp', 'forward')).stdout.match(/counter/g)?.length, 2);
    writeFileSync(file, removalRuleset('mcp'));
    await inNs('-f', file);
    await inNs('-f', file);
    assert.equal((await inNs('list', 'tables')).stdout.trim(), '');
  });
});

describe('net settings', () => {
  const src = (over: Record<string, unknown>) => ({ configPath: undefined, env: {}, flags: {}, cwd: '/srv/w', ...over });
  it('default to mcp-br0 on 10.99.0.0/24 with the gateway .1', () => {
    assert.deepEqual(bridgeSettings(loadConfig(src({}))), { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' });
  });
  it('refuse a subnet with no room for VMs, naming net.subnet', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-netcfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'a.toml'), '[net]\nsubnet = "10.99.0.0/31"\n');
    assert.throws(() => loadConfig(src({ configPath: join(dir, 'a.toml') })), (e: unknown) => e instanceof ValidationError && e.issues[0]!.field === 'net.subnet' && /prefix \/31 out of range/.test(e.issues[0]!.rule));
  });
});
