// The host steps of bridge networking (src/net/host.ts) against the real kernel, each run inside a
// network namespace this test creates and deletes.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';

const NS = `agtnet-${randomBytes(3).toString('hex')}`;
const STEP = fileURLToPath(new URL('../helpers/net-step.ts', import.meta.url));
const inNs = (...cmd: string[]) => execa('ip', ['netns', 'exec', NS, ...cmd], { reject: false });

async function step(name: string, ...args: string[]): Promise<{ ok: boolean; value?: unknown; error?: string }> {
  const r = await inNs(process.execPath, '--import', 'tsx', STEP, name, ...args);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as { ok: boolean; value?: unknown; error?: string };
}

async function linkJson(name: string): Promise<{ ifindex: number; master?: string; ifalias?: string; flags: string[] } | undefined> {
  const r = await inNs('ip', '-j', 'link', 'show', 'dev', name);
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as Array<{ ifindex: number; master?: string; ifalias?: string; flags: string[] }>)[0] : undefined;
}

describe('host networking steps (inside a test namespace)', () => {
  before(async () => {
    await execa('ip', ['netns', 'add', NS]);
    await inNs('ip', 'link', 'add', 'br-t', 'type', 'bridge');
    await inNs('ip', 'tuntap', 'add', 'dev', 'not-a-br', 'mode', 'tap');
  });
  after(async () => {
    await execa('ip', ['netns', 'del', NS], { reject: false });
  });

  it('bridgeExists: true for a bridge, false for a missing link and for a TAP of that name', async () => {
    assert.deepEqual(await step('bridgeExists', 'br-t'), { ok: true, value: true });
    assert.deepEqual(await step('bridgeExists', 'br-none'), { ok: true, value: false });
    assert.deepEqual(await step('bridgeExists', 'not-a-br'), { ok: true, value: false });
  });

  it('tapUp makes the TAP marked with its owner, on the bridge, up; again, it recreates it', async () => {
    assert.deepEqual(await step('tapUp', 'tap-t1', 'br-t', 'agentid:svc-k'), { ok: true });
    const first = await linkJson('tap-t1');
    assert.equal(first?.master, 'br-t');
    assert.equal(first?.ifalias, 'mcp-agent:agentid:svc-k');
    assert.ok(first?.flags.includes('UP'), JSON.stringify(first));
    // a TAP left by an earlier launch of the VM: deleted and made again
    assert.deepEqual(await step('tapUp', 'tap-t1', 'br-t', 'agentid:svc-k'), { ok: true });
    const second = await linkJson('tap-t1');
    assert.notEqual(second?.ifindex, first?.ifindex, 'a new TAP');
    assert.equal(second?.master, 'br-t');
  });

  it('tapUp onto a missing bridge fails, names the TAP and bridge, and leaves no TAP', async () => {
    const r = await step('tapUp', 'tap-t2', 'br-gone', 'agentid:svc-j');
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /tap-t2 on br-gone/);
    assert.equal(await linkJson('tap-t2'), undefined, 'no half-made TAP');
  });
  it("a TAP of that name with another owner's mark is never touched: tapUp fails naming it, tapDown leaves it", async () => {
    await inNs('ip', 'tuntap', 'add', 'dev', 'tap-t3', 'mode', 'tap');
    await inNs('ip', 'link', 'set', 'dev', 'tap-t3', 'alias', 'mcp-agent:otheragent:svc-k');
    const before = await linkJson('tap-t3');
    const r = await step('tapUp', 'tap-t3', 'br-t', 'agentid:svc-k');
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /tap-t3 exists and is not this VM's \(its mark: mcp-agent:otheragent:svc-k\)/);
    assert.deepEqual(await step('tapDown', 'tap-t3', 'agentid:svc-k'), { ok: true });
    const after = await linkJson('tap-t3');
    assert.equal(after?.ifindex, before?.ifindex, 'the same TAP, untouched');
    assert.equal(after?.master, undefined);
    // its owner can remove it
    assert.deepEqual(await step('tapDown', 'tap-t3', 'otheragent:svc-k'), { ok: true });
    assert.equal(await linkJson('tap-t3'), undefined);
  });
  it("net down takes back only the address net up added to an operator's bridge; the bridge and the operator's addresses stay", async () => {
    await inNs('ip', 'link', 'add', 'br-op', 'type', 'bridge');
    await inNs('ip', 'addr', 'add', '192.168.5.1/24', 'dev', 'br-op'); // the operator's own
    const up = await step('netUp', 'br-op', '10.99.0.1', '24', 'mcptest');
    assert.equal(up.ok, true, up.error);
    assert.ok((up.value as string[]).includes('address 10.99.0.1/24 on br-op'), JSON.stringify(up));
    const addrs = async () => ((await inNs('ip', '-j', 'addr', 'show', 'dev', 'br-op')).stdout.match(/"local":"[\d.]+"/g) ?? []).sort();
    assert.deepEqual(await addrs(), ['"local":"10.99.0.1"', '"local":"192.168.5.1"']);
    const down = await step('netDown', 'br-op', '10.99.0.1', '24', 'mcptest');
    assert.equal(down.ok, true, down.error);
    assert.match(JSON.stringify(down.value), /removed address 10\.99\.0\.1\/24 the agent had added to br-op/);
    assert.deepEqual(await addrs(), ['"local":"192.168.5.1"']);
    assert.ok(await linkJson('br-op'), 'the bridge stays');

    // the gateway address already there (the operator's, unlabelled): net up leaves it, net down too
    await inNs('ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'br-op');
    await step('netUp', 'br-op', '10.99.0.1', '24', 'mcptest');
    await step('netDown', 'br-op', '10.99.0.1', '24', 'mcptest');
    assert.deepEqual(await addrs(), ['"local":"10.99.0.1"', '"local":"192.168.5.1"']);
  });
  it('net up that fails at the rules takes back what it added: the bridge it made, or the address it gave an existing bridge', async () => {
    // a table name nft refuses makes the rules step fail after the bridge was made
    const r = await step('netUp', 'br-fail', '10.99.0.1', '24', 'bad name');
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /net up/);
    assert.equal(await linkJson('br-fail'), undefined, 'the bridge this call made is gone');
    const before = await linkJson('br-t');
    const addrs = async () => (await inNs('ip', '-j', 'addr', 'show', 'dev', 'br-t')).stdout.match(/"local":"[\d.]+"/g) ?? [];
    assert.deepEqual(await addrs(), []);
    assert.equal((await step('netUp', 'br-t', '10.99.0.1', '24', 'bad name')).ok, false);
    assert.equal((await linkJson('br-t'))?.ifindex, before?.ifindex, 'an existing bridge stays');
    assert.deepEqual(await addrs(), [], 'without the gateway address this call had added');
  });
});
