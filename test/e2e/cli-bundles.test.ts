// The built CLI's bundles (scripts/bundle.mjs, bin/bundle.js): each command runs from its own
// bundle (holding that command alone) or, for help and the commands that run others, from the whole
// one. Run for real: every command's --help from its own bundle, help and completion (which reads
// every command) from the whole one, and the bundle a call read, seen in /proc of the process.
// And the run caches (V8's code cache made after a command's first successful call): written
// then, read after, replaced when V8 refuses them, never written by help, a failing call or `agent run`.
import { strict as assert } from 'node:assert';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { BIN, ROOT } from '../helpers/agent.js';
import { Registry } from '../../src/registry/index.js';

const DIR = join(ROOT, 'dist/bundle');
const { COMMANDS } = (await import(join(ROOT, 'dist/cli/main.js'))) as { COMMANDS: Record<string, { needsAll?: boolean }> };

const cli = async (args: string[]) => {
  const r = await execa('node', [BIN, ...args], { reject: false, stdin: 'ignore', timeout: 30_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
};

describe('CLI bundles', () => {
  it('every command but completion and ssh-serve has its own bundle and code cache, and its --help runs from it', async () => {
    for (const [name, entry] of Object.entries(COMMANDS)) {
      const own = join(DIR, `agent.${name}.cjs`);
      const shouldHave = !entry.needsAll && name !== 'ssh-serve';
      assert.equal(existsSync(own), shouldHave, `${own} ${shouldHave ? 'missing' : 'should not exist'}`);
      if (shouldHave) assert.ok(existsSync(`${own}.cache`), `${own}.cache missing`);
      const r = await cli([name, '--help']);
      assert.equal(r.exitCode, 0, `${name} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: agent ${name} `, 'm'));
    }
  });

  it("a command's bundle holds no other command; help and completion, from the whole bundle, know them all", async () => {
    const events = readFileSync(join(DIR, 'agent.events.cjs'), 'latin1');
    assert.match(events, /src\/cli\/commands\/events\.ts/);
    assert.doesNotMatch(events, /src\/cli\/commands\/(run|apply|exec)\.ts/);
    assert.match(events, /internal: command run is not in the events bundle/);
    const help = await cli(['help']);
    for (const name of Object.keys(COMMANDS)) assert.match(help.stdout, new RegExp(`^  ${name}\\b`, 'm'), `help lists ${name}`);
    const completion = await cli(['completion', 'bash']);
    assert.equal(completion.exitCode, 0, completion.stderr);
    for (const name of Object.keys(COMMANDS)) assert.ok(completion.stdout.includes(name), `completion knows ${name}`);
  });

  it("a call reads its command's own bundle, and the whole one when its own is missing", async (t) => {
    // A copy of the install whose whole bundle only throws: a command with its own bundle runs,
    // one without it reaches the whole bundle and fails saying so.
    const tmp = mkdtempSync(join(tmpdir(), 'agent-e2e-bundles-'));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    cpSync(join(ROOT, 'bin'), join(tmp, 'bin'), { recursive: true });
    mkdirSync(join(tmp, 'dist/bundle'), { recursive: true });
    for (const f of ['agent.events.cjs', 'agent.events.cjs.cache']) cpSync(join(DIR, f), join(tmp, 'dist/bundle', f));
    writeFileSync(join(tmp, 'dist/bundle/agent.cjs'), "throw new Error('the whole bundle was read');\n");
    for (const link of ['node_modules', 'migrations', 'package.json']) symlinkSync(join(ROOT, link), join(tmp, link));
    const run = (args: string[]) => execa('node', [join(tmp, 'bin/agent.js'), ...args], { reject: false, stdin: 'ignore', timeout: 30_000 });
    const own = await run(['events', '--help']);
    assert.equal(own.exitCode, 0, String(own.stderr));
    assert.match(String(own.stdout), /^Usage: agent events /m);
    const whole = await run(['status', '--help']);
    assert.notEqual(whole.exitCode, 0);
    assert.match(String(whole.stderr), /the whole bundle was read/);
  });

  it("a command's first call that succeeds writes its run cache, which later calls read; help, a failing call or `run` write none", async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'agent-e2e-bundles-'));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    cpSync(join(ROOT, 'bin'), join(tmp, 'bin'), { recursive: true });
    mkdirSync(join(tmp, 'dist/bundle'), { recursive: true });
    for (const f of ['agent.events.cjs', 'agent.events.cjs.cache', 'agent.run.cjs', 'agent.run.cjs.cache', 'agent.cjs']) cpSync(join(DIR, f), join(tmp, 'dist/bundle', f));
    for (const link of ['node_modules', 'migrations', 'package.json']) symlinkSync(join(ROOT, link), join(tmp, link));
    const db = join(tmp, 'var/agent.db');
    Registry.open(db, { create: true }).close();
    const env = { ...process.env, AGENT_METRICS_LISTEN: '', AGENT_LOG_LEVEL: 'warn' };
    const run = (args: string[]) => execa('node', [join(tmp, 'bin/agent.js'), '--db', db, ...args], { reject: false, stdin: 'ignore', timeout: 60_000, env });
    const bundle = join(tmp, 'dist/bundle/agent.events.cjs');
    const runCache = `${bundle}.cache.run`;
    /** Whether V8 takes `cache` for the events bundle, as bin/bundle.js compiles it. */
    const accepted = (cache: Buffer): boolean => {
      const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'latin1')}\n})`;
      return !new Script(source, { filename: bundle, cachedData: cache }).cachedDataRejected;
    };

    // Help runs none of the command, a failing call may have stopped anywhere: neither is kept.
    for (const args of [['events', '--help'], ['events', '--limit', '0']]) {
      const r = await run(args);
      assert.equal(r.exitCode, args.includes('--help') ? 0 : 2, String(r.stderr));
      assert.ok(!existsSync(runCache), `${args.join(' ')} wrote a run cache`);
    }

    const first = await run(['events', '--json']);
    assert.equal(first.exitCode, 0, String(first.stderr));
    assert.ok(existsSync(runCache), 'no run cache after a call that succeeded');
    const written = readFileSync(runCache);
    assert.ok(accepted(written), 'V8 refuses the run cache');
    // Made after the call: it holds what the call compiled besides the build's top level.
    assert.ok(written.length > statSync(`${bundle}.cache`).size, `run cache ${written.length} bytes, build cache ${statSync(`${bundle}.cache`).size}`);

    const before = statSync(runCache).mtimeMs;
    const again = await run(['events', '--json']);
    assert.equal(again.exitCode, 0, String(again.stderr));
    assert.equal(statSync(runCache).mtimeMs, before, 'a call that read the run cache wrote it again');

    // One V8 refuses (another Node, a torn copy): the call runs all the same and replaces it.
    writeFileSync(runCache, Buffer.alloc(written.length, 7));
    const refused = await run(['events', '--json']);
    assert.equal(refused.exitCode, 0, String(refused.stderr));
    assert.ok(accepted(readFileSync(runCache)), 'a refused run cache was not replaced by a good one');

    // `agent run`'s end is no time for a cache: a pass over an empty registry writes none.
    const once = await run(['run', '--once']);
    assert.equal(once.exitCode, 0, String(once.stderr));
    assert.ok(!existsSync(join(tmp, 'dist/bundle/agent.run.cjs.cache.run')), '`agent run` wrote a run cache');
  });
});
