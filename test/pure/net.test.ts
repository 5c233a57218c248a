// src/net/plan.ts (pure: address arithmetic, TAP names, the nft ruleset text), the ruleset checked
// and loaded by the real nft inside a throwaway network namespace, and the net settings of config.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { bridgeSettings, DEFAULT_CONFIG_PATH, loadConfig, type ConfigSources } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { gatewayOf, intToIp, ipToInt, isolationRuleset, parseSubnet, pickIp, removalRuleset, rulesetMatches, tapName, vmAddresses } from '../../src/net/plan.js';

const HEAD = (t: string): string => `table inet ${t}\ndelete table inet ${t}\ntable bridge ${t}\ndelete table bridge ${t}\n`;

describe('ipToInt / intToIp', () => {
  it('maps known addresses to their 32-bit numbers and back', () => {
    assert.equal(ipToInt('0.0.0.0'), 0);
    assert.equal(ipToInt('0.0.0.1'), 1);
    assert.equal(ipToInt('0.0.1.0'), 256);
    assert.equal(ipToInt('10.99.0.1'), 0x0a630001);
    assert.equal(ipToInt('255.255.255.255'), 0xffffffff);
    assert.equal(intToIp(0x0a6300fe), '10.99.0.254');
    assert.equal(intToIp(0xffffffff), '255.255.255.255');
    assert.equal(intToIp(0), '0.0.0.0');
  });

  it('round-trips in both directions', () => {
    for (const ip of ['0.0.0.0', '1.2.3.4', '10.99.0.7', '127.0.0.1', '192.168.255.1', '255.255.255.255', '128.0.0.0']) {
      assert.equal(intToIp(ipToInt(ip)), ip);
    }
    for (const n of [0, 1, 255, 256, 65535, 0x7fffffff, 0x80000000, 0xc0a80001, 0xffffffff]) {
      assert.equal(ipToInt(intToIp(n)), n);
    }
  });

  it('refuses an octet above 255, the wrong number of parts, letters and junk', () => {
    for (const bad of ['10.99.0.256', '256.0.0.0', '10.99.0', '10.99', '10.99.0.1.2', 'a.b.c.d', '10.99.0.x', '10.99.0.1a', '', '...', '10.99.0.-1', '10.99.0.1/24', ' 10.99.0.1', '1000.0.0.1', '10.099.0.1', '010.0.0.1', '10.99.0.00']) {
      assert.throws(() => ipToInt(bad), /not an IPv4 address/, `accepted ${JSON.stringify(bad)}`);
    }
  });

  it('intToIp refuses what is not a 32-bit unsigned integer', () => {
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) assert.throws(() => intToIp(bad), RangeError, `accepted ${bad}`);
  });
});

describe('parseSubnet', () => {
  it('normalises to the network address', () => {
    assert.deepEqual(parseSubnet('10.99.0.7/24'), { network: ipToInt('10.99.0.0'), prefix: 24 });
    assert.deepEqual(parseSubnet('10.99.0.0/24'), { network: ipToInt('10.99.0.0'), prefix: 24 });
    assert.deepEqual(parseSubnet('10.99.0.255/24'), { network: ipToInt('10.99.0.0'), prefix: 24 });
    assert.deepEqual(parseSubnet('10.99.7.7/16'), { network: ipToInt('10.99.0.0'), prefix: 16 });
    assert.deepEqual(parseSubnet('10.99.0.7/30'), { network: ipToInt('10.99.0.4'), prefix: 30 });
    assert.deepEqual(parseSubnet('10.1.2.3/8'), { network: ipToInt('10.0.0.0'), prefix: 8 });
  });

  it('accepts the prefix bounds /8 and /30', () => {
    assert.equal(parseSubnet('10.0.0.0/8').prefix, 8);
    assert.equal(parseSubnet('10.0.0.0/30').prefix, 30);
  });

  it('refuses /31, /32, /7 and junk', () => {
    assert.throws(() => parseSubnet('10.99.0.0/31'), /prefix \/31 out of range/);
    assert.throws(() => parseSubnet('10.99.0.0/32'), /prefix \/32 out of range/);
    assert.throws(() => parseSubnet('10.0.0.0/7'), /prefix \/7 out of range/);
    assert.throws(() => parseSubnet('10.0.0.0/0'), /out of range/);
    for (const bad of ['10.99.0.0', 'x/24', '10.99.0/24', '10.99.0.0/', '10.99.0.0/123', '/24', '10.99.0.0/24 ', 'ten.0.0.0/24']) {
      assert.throws(() => parseSubnet(bad), /not an IPv4 CIDR/, `accepted ${JSON.stringify(bad)}`);
    }
    assert.throws(() => parseSubnet('10.99.0.300/24'), /not an IPv4 address/);
  });
});

describe('gatewayOf / vmAddresses', () => {
  it('gives the gateway the first host address', () => {
    assert.equal(gatewayOf(parseSubnet('10.99.0.0/24')), '10.99.0.1');
    assert.equal(gatewayOf(parseSubnet('10.99.0.77/24')), '10.99.0.1');
    assert.equal(gatewayOf(parseSubnet('172.16.5.9/16')), '172.16.0.1');
    assert.equal(gatewayOf(parseSubnet('10.99.0.9/30')), '10.99.0.9');
  });

  it('gives VMs .2-.254 in a /24: gateway and broadcast excluded', () => {
    const r = vmAddresses(parseSubnet('10.99.0.0/24'));
    assert.equal(intToIp(r.first), '10.99.0.2');
    assert.equal(intToIp(r.last), '10.99.0.254');
    assert.equal(r.last - r.first + 1, 253);
  });

  it('gives VMs just .2 in a /30', () => {
    const r = vmAddresses(parseSubnet('10.99.0.0/30'));
    assert.deepEqual([intToIp(r.first), intToIp(r.last)], ['10.99.0.2', '10.99.0.2']);
  });

  it('bounds a /16 by its own network and broadcast', () => {
    const r = vmAddresses(parseSubnet('10.99.0.0/16'));
    assert.deepEqual([intToIp(r.first), intToIp(r.last)], ['10.99.0.2', '10.99.255.254']);
  });
});

describe('pickIp', () => {
  const s24 = parseSubnet('10.99.0.0/24');

  it('returns the lowest free address', () => {
    assert.equal(pickIp(s24, new Set()), '10.99.0.2');
    assert.equal(pickIp(s24, new Set(['10.99.0.2'])), '10.99.0.3');
    assert.equal(pickIp(s24, new Set(['10.99.0.2', '10.99.0.3', '10.99.0.5'])), '10.99.0.4');
    assert.equal(pickIp(s24, new Set(['10.99.0.3', '10.99.0.4'])), '10.99.0.2');
  });

  it('ignores taken addresses outside the subnet', () => {
    assert.equal(pickIp(s24, new Set(['10.98.0.2', '10.99.1.2'])), '10.99.0.2');
  });

  it('returns undefined when the subnet is full', () => {
    const all = new Set(Array.from({ length: 253 }, (_, i) => `10.99.0.${i + 2}`));
    assert.equal(pickIp(s24, all), undefined);
    all.delete('10.99.0.254');
    assert.equal(pickIp(s24, all), '10.99.0.254');
    assert.equal(pickIp(parseSubnet('10.99.0.0/30'), new Set(['10.99.0.2'])), undefined);
    assert.equal(pickIp(parseSubnet('10.99.0.0/30'), new Set()), '10.99.0.2');
  });

  it('never hands out the network, gateway or broadcast address', () => {
    const tiny = parseSubnet('10.99.0.0/29');
    const got: string[] = [];
    const taken = new Set<string>();
    for (let ip = pickIp(tiny, taken); ip !== undefined; ip = pickIp(tiny, taken)) {
      got.push(ip);
      taken.add(ip);
      assert.ok(got.length <= 8, 'pickIp does not terminate');
    }
    assert.deepEqual(got, ['10.99.0.2', '10.99.0.3', '10.99.0.4', '10.99.0.5', '10.99.0.6']);
    for (const reserved of ['10.99.0.0', '10.99.0.1', '10.99.0.7']) assert.ok(!got.includes(reserved), `handed out ${reserved}`);
  });
});

describe('tapName', () => {
  it('is 15 characters, tap- and hex, so the bridge rule tap-* matches it', () => {
    for (const w of ['web-vm', 'a', '', 'x'.repeat(300), 'ünïcode/ws:comp']) {
      const n = tapName(w);
      assert.equal(n.length, 15, n);
      assert.ok(n.startsWith('tap-'), n);
      assert.match(n, /^tap-[0-9a-f]{11}$/);
    }
  });

  it('is deterministic and differs per workload', () => {
    assert.equal(tapName('web-vm'), tapName('web-vm'));
    assert.notEqual(tapName('web-vm'), tapName('web-vm2'));
    const names = new Set(Array.from({ length: 1000 }, (_, i) => tapName(`ws/comp-${i}`)));
    assert.equal(names.size, 1000);
  });
});

describe('isolationRuleset / removalRuleset (text)', () => {
  const rs = isolationRuleset('br-x', '10.1.2.1', 'tbl');
  const lines = rs.split('\n').map((l) => l.trim());
  /** The lines of `family table` (`table <family> <name> {` ... its closing `}` at column 0). */
  const block = (family: string, name: string): string => {
    const m = new RegExp(`^table ${family} ${name} \\{\\n([\\s\\S]*?)^\\}`, 'm').exec(rs);
    assert.ok(m, `no table ${family} ${name} block`);
    return m[1]!;
  };
  const chain = (body: string, name: string): string[] => {
    const m = new RegExp(`chain ${name} \\{\\n([\\s\\S]*?)\\n  \\}`).exec(body);
    assert.ok(m, `no chain ${name}`);
    return m[1]!.split('\n').map((l) => l.trim());
  };

  it('starts with the idempotent head for both families', () => {
    assert.ok(rs.startsWith(HEAD('tbl')), rs.slice(0, 120));
  });

  it('input: accepts established and the gateway from the bridge, then drops the bridge', () => {
    const input = chain(block('inet', 'tbl'), 'input');
    assert.equal(input[0], 'type filter hook input priority filter; policy accept;');
    const est = input.indexOf('iifname "br-x" ct state established,related accept');
    const gw = input.indexOf('iifname "br-x" ip daddr 10.1.2.1 accept');
    const drop = input.indexOf('iifname "br-x" counter drop');
    assert.ok(est > 0 && gw > 0 && drop > 0, input.join('\n'));
    assert.ok(est < drop && gw < drop, 'the accepts must precede the drop');
  });

  it('forward: drops from and to the bridge', () => {
    const fwd = chain(block('inet', 'tbl'), 'forward');
    assert.equal(fwd[0], 'type filter hook forward priority filter; policy accept;');
    assert.ok(fwd.includes('iifname "br-x" counter drop'), fwd.join('\n'));
    assert.ok(fwd.includes('oifname "br-x" counter drop'), fwd.join('\n'));
  });

  it('bridge family: drops tap-* to tap-*', () => {
    const fwd = chain(block('bridge', 'tbl'), 'forward');
    assert.equal(fwd[0], 'type filter hook forward priority filter; policy accept;');
    assert.ok(fwd.includes('iifname "tap-*" oifname "tap-*" counter drop'), fwd.join('\n'));
    // every TAP name the agent makes is covered by that prefix
    assert.ok(tapName('any').startsWith('tap-'));
  });

  it('uses the given bridge, gateway and table names, and no others', () => {
    const other = isolationRuleset('mcp-br9', '192.168.50.1', 'other_t');
    assert.ok(other.startsWith(HEAD('other_t')));
    assert.match(other, /^table inet other_t \{$/m);
    assert.match(other, /^table bridge other_t \{$/m);
    assert.match(other, /iifname "mcp-br9" ip daddr 192\.168\.50\.1 accept/);
    assert.equal(other.match(/"mcp-br9"/g)?.length, 5);
    for (const s of ['br-x', '10.1.2.1', 'tbl', 'mcp-br0', '10.99.0.1']) assert.ok(!other.includes(s), `leaks ${s}`);
    // two head declarations and two bodies; two deletes; nothing else names a table
    assert.deepEqual(lines.filter((l) => /\btable\b/.test(l)), ['table inet tbl', 'delete table inet tbl', 'table bridge tbl', 'delete table bridge tbl', 'table inet tbl {', 'table bridge tbl {']);
  });

  it('removalRuleset is exactly the head', () => {
    assert.equal(removalRuleset('tbl'), HEAD('tbl'));
    assert.equal(removalRuleset('mcp'), 'table inet mcp\ndelete table inet mcp\ntable bridge mcp\ndelete table bridge mcp\n');
    assert.ok(!removalRuleset('tbl').includes('{'));
  });
});

describe('rulesetMatches (what nft lists vs the ruleset)', () => {
  // what `nft list table inet mcp` + `nft list table bridge mcp` print after loading the ruleset
  const LISTED = `table inet mcp {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname "mcp-br0" ct state established,related accept
\t\tiifname "mcp-br0" ip daddr 10.99.0.1 accept
\t\tiifname "mcp-br0" counter packets 0 bytes 0 drop
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "mcp-br0" counter packets 12 bytes 1008 drop
\t\toifname "mcp-br0" counter packets 0 bytes 0 drop
\t}
}
table bridge mcp {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "tap-*" oifname "tap-*" counter packets 3 bytes 252 drop
\t}
}
`;
  it('accepts the listing of the loaded ruleset, whatever the counters say', () => {
    assert.equal(rulesetMatches(LISTED, 'mcp-br0', '10.99.0.1', 'mcp'), true);
  });
  it('refuses a listing with a rule missing, a rule added, or for another bridge or gateway', () => {
    assert.equal(rulesetMatches(LISTED.replace(/\t\toifname "mcp-br0".*\n/, ''), 'mcp-br0', '10.99.0.1', 'mcp'), false);
    assert.equal(rulesetMatches(LISTED.replace('policy accept;\n', 'policy accept;\n\t\tip saddr 10.99.0.5 accept\n'), 'mcp-br0', '10.99.0.1', 'mcp'), false);
    assert.equal(rulesetMatches(LISTED, 'br-x', '10.99.0.1', 'mcp'), false);
    assert.equal(rulesetMatches(LISTED, 'mcp-br0', '10.99.0.9', 'mcp'), false);
    assert.equal(rulesetMatches('', 'mcp-br0', '10.99.0.1', 'mcp'), false);
  });
});

describe('the ruleset in the real nft (throwaway network namespace)', () => {
  it('checks, loads twice without duplicating, rejects a broken ruleset, and unloads', async (t) => {
    const probe = await execa('nft', ['--version'], { reject: false, stdin: 'ignore' }).catch(() => undefined);
    if (!probe || probe.exitCode !== 0) {
      t.skip('nft is not installed');
      return;
    }
    const ns = `agtunit-${randomBytes(4).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'agent-netplan-'));
    // Registered before the namespace exists: it is removed even if a step below fails.
    t.after(async () => {
      await execa('ip', ['netns', 'del', ns], { reject: false, stdin: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    });
    await execa('ip', ['netns', 'add', ns], { stdin: 'ignore' });
    const nft = (...a: string[]) => execa('ip', ['netns', 'exec', ns, 'nft', ...a], { stdin: 'ignore' });
    const file = (name: string, text: string): string => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const rules = file('rules.nft', isolationRuleset('mcp-br0', '10.99.0.1', 'mcp'));
    const removal = file('removal.nft', removalRuleset('mcp'));

    // The namespace starts empty; the check-only pass loads nothing.
    assert.equal((await nft('list', 'tables')).stdout.trim(), '');
    await nft('-c', '-f', rules);
    assert.equal((await nft('list', 'tables')).stdout.trim(), '');

    // The check can fail: a misspelt rule is refused.
    const broken = file('broken.nft', isolationRuleset('mcp-br0', '10.99.0.1', 'mcp').replace('oifname "tap-*"', 'oifnam "tap-*"'));
    const bad = await execa('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', broken], { reject: false, stdin: 'ignore' });
    assert.notEqual(bad.exitCode, 0, 'nft -c accepted a broken ruleset');

    // Load twice: the second load replaces the tables instead of failing or duplicating rules.
    await nft('-f', rules);
    await nft('-f', rules);
    const tables = (await nft('list', 'tables')).stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
    assert.deepEqual(tables, ['table bridge mcp', 'table inet mcp']);
    const all = (await nft('list', 'ruleset')).stdout;
    const count = (re: RegExp): number => all.match(re)?.length ?? 0;
    assert.equal(count(/iifname "mcp-br0" ct state established,related accept/g), 1, all);
    assert.equal(count(/iifname "mcp-br0" ip daddr 10\.99\.0\.1 accept/g), 1, all);
    assert.equal(count(/iifname "mcp-br0" counter packets \d+ bytes \d+ drop/g), 2, all);
    assert.equal(count(/oifname "mcp-br0" counter packets \d+ bytes \d+ drop/g), 1, all);
    assert.equal(count(/iifname "tap-\*" oifname "tap-\*" counter packets \d+ bytes \d+ drop/g), 1, all);
    assert.equal(count(/hook input/g), 1, all);
    assert.equal(count(/hook forward/g), 2, all);

    // Unload twice: the second run finds nothing and still succeeds.
    await nft('-f', removal);
    assert.equal((await nft('list', 'tables')).stdout.trim(), '');
    await nft('-f', removal);
    assert.equal((await nft('list', 'tables')).stdout.trim(), '');
  });
});

describe('net settings in config', () => {
  const src = (over: Partial<ConfigSources> = {}): ConfigSources => ({ configPath: undefined, env: {}, flags: {}, cwd: '/srv/w', ...over });
  const withFile = (t: { after: (fn: () => void) => void }, text: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-netcfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, 'agent.toml');
    writeFileSync(f, text);
    return f;
  };

  it('default to gateway 10.99.0.1 on a /24', { skip: existsSync(DEFAULT_CONFIG_PATH) ? `${DEFAULT_CONFIG_PATH} exists on this machine` : false }, () => {
    const cfg = loadConfig(src());
    assert.equal(cfg.net.subnet, '10.99.0.0/24');
    assert.deepEqual(bridgeSettings(cfg), { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' });
  });

  it('derive the gateway from a configured, unnormalised subnet', (t) => {
    const cfg = loadConfig(src({ configPath: withFile(t, '[net]\nsubnet = "10.50.3.77/16"\nbridge = "br-test"\ntable = "tt"\n') }));
    assert.deepEqual(bridgeSettings(cfg), { bridge: 'br-test', gateway: '10.50.0.1', prefix: 16, table: 'tt' });
  });

  it('refuse net.subnet = 10.99.0.0/31 with a ValidationError naming net.subnet', (t) => {
    const f = withFile(t, '[net]\nsubnet = "10.99.0.0/31"\n');
    assert.throws(
      () => loadConfig(src({ configPath: f })),
      (e: unknown) => {
        assert.ok(e instanceof ValidationError, `expected a ValidationError, got ${String(e)}`);
        assert.equal(e.issues.length, 1, JSON.stringify(e.issues));
        assert.equal(e.issues[0]!.field, 'net.subnet');
        assert.match(e.issues[0]!.rule, /\/31/);
        assert.match(e.message, /net\.subnet/);
        assert.ok(e.message.includes(f), `the error names the config file: ${e.message}`);
        return true;
      },
    );
  });

  it('report a bad subnet and a bad backoff together, in one error', (t) => {
    const f = withFile(t, '[net]\nsubnet = "10.99.0.0/31"\n[backoff]\nbase_ms = 5000\nmax_ms = 1000\n');
    assert.throws(
      () => loadConfig(src({ configPath: f })),
      (e: unknown) => e instanceof ValidationError && ['backoff.max_ms', 'net.subnet'].every((x) => e.issues.some((i) => i.field === x)),
    );
  });

  it('refuse "." and ".." as bridge names, naming net.bridge', (t) => {
    for (const bad of ['.', '..', '.hidden', 'sixteen-chars-xx', 'br 0']) {
      const f = withFile(t, `[net]\nbridge = "${bad}"\n`);
      assert.throws(
        () => loadConfig(src({ configPath: f })),
        (e: unknown) => e instanceof ValidationError && e.issues.some((i) => i.field === 'net.bridge'),
        `accepted ${bad}`,
      );
    }
  });

  it('refuse a malformed net.subnet and an octet above 255, naming net.subnet', (t) => {
    for (const bad of ['10.99.0.0', '10.99.0.300/24', '10.0.0.0/7']) {
      const f = withFile(t, `[net]\nsubnet = "${bad}"\n`);
      assert.throws(
        () => loadConfig(src({ configPath: f })),
        (e: unknown) => e instanceof ValidationError && e.issues.some((i) => i.field === 'net.subnet'),
        `accepted ${bad}`,
      );
    }
  });
});
