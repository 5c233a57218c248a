// The CLI's I/O conventions on the real CLI, real podman and real QEMU: --version, completion in a
// real bash (and zsh when installed), logs --tail/--since, exec -i with stdin and EOF, exec's own
// failures as exit 125, the command's own exit code, a broken pipe ending quietly, a non-blocking
// stdout that fills (the whole output still arrives), VM boot
// progress during run --once (plain lines, and redrawn on a pty through `script`), apply --wait.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { BIN, ROOT, TestNode, VM_KERNEL, containerService, row, waitFor } from '../helpers/agent.js';
import { Registry } from '../../src/registry/index.js';

/** Numbered lines, then sleep: a container whose logs are known. */
const NUMBERED = ['sh', '-c', 'i=1; while [ $i -le 20 ]; do echo line$i; i=$((i+1)); done; exec sleep 2147483647'];
const VM_ENV = { AGENT_ACCEL: 'tcg' };

/** The CLI with a bound of its own: a hang fails the test (timedOut) instead of stalling the run. */
async function bounded(node: TestNode, args: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}) {
  const r = await execa('node', [BIN, '--db', node.db, ...args], {
    reject: false,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    env: { AGENT_LOG_LEVEL: 'warn', ...node.env, ...opts.env },
    timeout: opts.timeoutMs ?? 30_000,
  });
  assert.equal(r.timedOut, false, `agent ${args.join(' ')} did not return within ${opts.timeoutMs ?? 30_000} ms`);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function vmService(name: string, comps: string[]): string {
  let out = `name = "${name}"\nruntime = "unikernel"\n`;
  for (const c of comps) out += `\n[[components]]\nname = "${c}"\nmemory = 128\n${VM_KERNEL}\n`;
  return out;
}

async function containerNode(t: { after: (fn: () => Promise<void>) => void }): Promise<{ node: TestNode; svc: string }> {
  const node = new TestNode();
  t.after(() => node.cleanup());
  const svc = TestNode.serviceName('cvb');
  await node.apply(containerService(svc, { web: NUMBERED }));
  await node.ok(['run', '--once']);
  await waitFor('the numbered lines in the logs', async () => (await node.ok(['logs', `${svc}/web`])).includes('line20'));
  return { node, svc };
}

describe('CLI I/O conventions', () => {
  it('--version and -V print package.json\'s version', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await node.cli([flag]);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout.trim(), pkg.version);
    }
  });

  it('completion bash works in a real bash: commands, subcommands, flags, choices; an unknown shell is exit 2', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const script = join(node.dir, 'agent.bash');
    writeFileSync(script, await node.ok(['completion', 'bash']));
    const complete = async (...words: string[]): Promise<string[]> => {
      const cmd = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _agent_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = await execa('bash', ['-c', cmd], { reject: false });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stderr, '');
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(await complete('agent', 'st'), ['status']);
    assert.ok((await complete('agent', 'status', '--')).includes('--json'));
    assert.ok((await complete('agent', 'exec', '--')).includes('--interactive'));
    assert.ok((await complete('agent', 'logs', 'x/y', '--')).includes('--since'));
    assert.deepEqual(await complete('agent', '--db', 'x.db', 'fleet', 'ap'), ['apply']);
    assert.deepEqual(await complete('agent', 'apply', '--format', ''), ['toml', 'yaml', 'json']);
    assert.deepEqual(await complete('agent', 'completion', ''), ['bash', 'zsh']);
    const bad = await node.cli(['completion', 'fish']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /'fish'/);
    assert.match(bad.stderr, /bash, zsh/);
  });

  it('completion zsh works in a real zsh (when zsh is installed)', async (t) => {
    if ((await execa('zsh', ['--version'], { reject: false })).exitCode !== 0) return t.skip('zsh is not installed');
    const node = new TestNode();
    t.after(() => node.cleanup());
    const script = join(node.dir, '_agent');
    writeFileSync(script, await node.ok(['completion', 'zsh']));
    // compadd and _files stubbed: what the function offers is printed, one word a line.
    const complete = async (...words: string[]): Promise<string[]> => {
      const cmd = `compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }; _files() { print FILES; }
source ${script}; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; _agent`;
      const r = await execa('zsh', ['-f', '-c', cmd], { reject: false });
      assert.equal(r.stderr, '');
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.ok((await complete('agent', 'st')).includes('status'));
    assert.ok((await complete('agent', 'status', '--')).includes('--json'));
    assert.deepEqual(await complete('agent', '--log-level', ''), ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);
  });

  it('logs --tail and --since on a container; bad values name the flag', async (t) => {
    const { node, svc } = await containerNode(t);
    const ref = `${svc}/web`;
    // (execa drops the output's final newline)
    assert.equal(await node.ok(['logs', ref, '--tail', '3']), 'line18\nline19\nline20');
    assert.equal(await node.ok(['logs', ref, '-n', '0']), '');
    assert.equal((await node.ok(['logs', ref, '--since', '1h'])).split('\n').filter(Boolean).length, 20);
    const future = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    assert.equal(await node.ok(['logs', ref, '--since', future]), '');
    assert.equal(await node.ok(['logs', ref, '--since', '2000-01-01T00:00:00Z', '--tail', '1']), 'line20');
    const bad = await node.cli(['logs', ref, '--tail', '-1', '--since', '5']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /--tail: must be a whole number/);
    assert.match(bad.stderr, /--since: must be a duration with a unit.*got '5'/);
  });

  it('exec on a container: -i passes stdin and its end; without -i stdin is empty; exit codes', async (t) => {
    const { node, svc } = await containerNode(t);
    const ref = `${svc}/web`;
    const read = ['sh', '-c', 'read x; echo got:$x'];
    let r = await bounded(node, ['exec', '-i', ref, '--', ...read], { input: 'abc\n' });
    assert.deepEqual([r.exitCode, r.stdout], [0, 'got:abc'], r.stderr);
    r = await bounded(node, ['exec', ref, '--', ...read], { input: 'abc\n' });
    assert.deepEqual([r.exitCode, r.stdout], [0, 'got:'], r.stderr);
    r = await bounded(node, ['exec', '-i', ref, '--', 'cat']); // stdin /dev/null: EOF at once
    assert.deepEqual([r.exitCode, r.stdout], [0, ''], r.stderr);
    r = await bounded(node, ['exec', '-i', ref, '--', 'wc', '-l'], { input: 'a\nb\nc\n' });
    assert.equal(r.stdout.trim(), '3');
    // the command's own codes pass through, 126/127 included
    assert.equal((await bounded(node, ['exec', ref, '--', 'sh', '-c', 'exit 7'])).exitCode, 7);
    assert.equal((await bounded(node, ['exec', ref, '--', 'no-such-command'])).exitCode, 127);
    // exec's own failures: 125 with a message naming the component
    r = await bounded(node, ['exec', `${svc}/nope`, '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, new RegExp(`^agent: exec ${svc}/nope: no component ${svc}/nope in the registry`));
    await execa('podman', ['stop', '--time', '0', `${svc}-web`]);
    r = await bounded(node, ['exec', ref, '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.equal(r.stderr.trim(), `agent: exec ${ref}: the container is not running (state exited)`);
    await execa('podman', ['rm', '--force', '--time', '0', `${svc}-web`]);
    r = await bounded(node, ['exec', ref, '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, /no such container of this agent/);
  });

  it('a reader that goes away ends the CLI quietly with 141, as git does', async (t) => {
    const { node } = await containerNode(t);
    for (const cmd of ['status --json', 'events -n 1000 --json', 'completion bash']) {
      const err = join(node.dir, 'stderr');
      // `true` exits before the CLI has started: its first write meets a closed pipe.
      const r = await execa('bash', ['-c', `node ${BIN} --db ${node.db} ${cmd} 2>${err} | true; echo "\${PIPESTATUS[0]}"`], { env: { AGENT_LOG_LEVEL: 'warn' } });
      assert.equal(r.stdout.trim(), '141', cmd);
      assert.equal(readFileSync(err, 'utf8'), '', `${cmd}: nothing on stderr`);
    }
  });

  it('a non-blocking stdout that fills up: the whole document arrives, in order (EAGAIN is waited out)', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const r = Registry.open(node.db, { create: true });
    for (let i = 0; i < 1000; i++) r.events.append({ service: 'web', component: 'api', workload: 'web-api', action: 'restart', reason: `r${i}`, outcome: 'ok', message: `${i} ${'x'.repeat(300)}` });
    r.close();
    const out = join(node.dir, 'out.json');
    // perl (perl-base: always on Debian) sets O_NONBLOCK on the pipe before exec'ing the CLI, and
    // the reader starts a second late: the 64 KiB pipe fills, and the next write meets EAGAIN.
    const nonblocking = `perl -MFcntl -e 'my $f = fcntl(STDOUT, F_GETFL, 0); fcntl(STDOUT, F_SETFL, $f | O_NONBLOCK) or die "fcntl: $!"; exec @ARGV or die "exec: $!"'`;
    const cmd = `set -o pipefail; ${nonblocking} node ${BIN} --db ${node.db} events -n 100000 --json | (sleep 1; cat > ${out})`;
    const run = await execa('bash', ['-c', cmd], { reject: false, env: { AGENT_LOG_LEVEL: 'warn' }, timeout: 30_000 });
    assert.equal(run.exitCode, 0, String(run.stderr));
    const events = JSON.parse(readFileSync(out, 'utf8')) as Array<{ reason: string }>;
    assert.ok(readFileSync(out).length > 256 * 1024, 'the document is larger than the pipe');
    assert.equal(events.length, 1000);
    // Newest first: every event, none twice, none out of place.
    assert.deepEqual(events.map((e) => e.reason), Array.from({ length: 1000 }, (_, i) => `r${999 - i}`));
  });

  it('VMs: run --once tells the boot; exec -i and EOF; logs --tail, --since refused; exec on a dead VM is 125', async (t) => {
    const node = new TestNode(VM_ENV);
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName('cvb');
    await node.apply(vmService(svc, ['vm']));
    const once = await node.cli(['run', '--once']);
    assert.equal(once.exitCode, 0, once.stderr);
    // not a terminal: one line when the wait begins, one when it ends, no ticks
    const lines = once.stderr.split('\n').filter((l) => l.startsWith(`${svc}/vm: `));
    assert.equal(lines.length, 2, once.stderr);
    assert.equal(lines[0], `${svc}/vm: waiting for SSH`);
    assert.match(lines[1]!, new RegExp(`^${svc}/vm: SSH ready after \\d+\\.\\d s$`));

    const ref = `${svc}/vm`;
    let r = await bounded(node, ['exec', ref, '--', 'cat']); // the hang of issue 10: no -i, stdin never closed
    assert.deepEqual([r.exitCode, r.stdout], [0, ''], r.stderr);
    r = await bounded(node, ['exec', '-i', ref, '--', 'cat']);
    assert.deepEqual([r.exitCode, r.stdout], [0, ''], r.stderr);
    r = await bounded(node, ['exec', '-i', ref, '--', 'sh', '-c', 'read x; echo got:$x'], { input: 'abc\n' });
    assert.deepEqual([r.exitCode, r.stdout], [0, 'got:abc'], r.stderr);
    r = await bounded(node, ['exec', '-i', ref, '--', 'wc', '-l'], { input: 'a\nb\nc\n' });
    assert.equal(r.stdout.trim(), '3');
    assert.equal((await bounded(node, ['exec', ref, '--', 'sh', '-c', 'exit 7'])).exitCode, 7);

    const consoleLines = readFileSync(join(node.dir, 'vm', `${svc}-vm`, 'console.log'), 'utf8').replaceAll('\r', '').trimEnd().split('\n');
    assert.equal(await node.ok(['logs', ref, '--tail', '2']), consoleLines.slice(-2).join('\n'));
    const since = await node.cli(['logs', ref, '--since', '5m']);
    assert.equal(since.exitCode, 2);
    assert.match(since.stderr, /--since: .* is a VM: its serial console has no timestamps/);

    const pid = node.qemuPid(`${svc}-vm`)!;
    process.kill(pid, 'SIGKILL');
    await waitFor('QEMU to be gone', async () => !existsSync(`/proc/${pid}`) || /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), 20_000, 50);
    r = await bounded(node, ['exec', ref, '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.equal(r.stderr.trim(), `agent: exec ${ref}: the VM is not running`);
  });

  it('VMs: run --once on a terminal redraws "waiting for SSH, N s" in place (through script)', async (t) => {
    if ((await execa('script', ['--version'], { reject: false })).exitCode !== 0) return t.skip('script (util-linux) is not installed');
    const node = new TestNode(VM_ENV);
    t.after(() => node.cleanup());
    node.useGuestImages();
    const svc = TestNode.serviceName('cvb');
    await node.apply(vmService(svc, ['vm']));
    const r = await execa('script', ['-qec', `node ${BIN} --db ${node.db} run --once`, '/dev/null'], { reject: false, env: { AGENT_LOG_LEVEL: 'warn', ...VM_ENV }, timeout: 120_000 });
    assert.equal(r.exitCode, 0, r.stdout);
    const out = String(r.stdout);
    assert.match(out, new RegExp(`${svc}/vm: waiting for SSH, 0\\.\\d s`));
    assert.match(out, new RegExp(`\\r\\x1b\\[J${svc}/vm: waiting for SSH, \\d+\\.\\d s`), 'redrawn in place');
    assert.match(out, new RegExp(`${svc}/vm: SSH ready after \\d+\\.\\d s`));
    assert.equal(row(await node.status(), svc, 'vm').drift, 'in-sync');
  });

  it('apply --wait: 0 once the running agent has it in sync; 1 naming what is not; bad timeout is 2', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('cvb');
    const file = join(node.dir, 'svc.toml');
    writeFileSync(file, containerService(svc, { web: NUMBERED }));
    // no agent: nothing converges; the wait says so and names the component
    let r = await bounded(node, ['apply', '-f', file, '--wait', '--wait-timeout', '1s']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /no agent is running/);
    assert.match(r.stderr, new RegExp(`apply --wait: 1 component\\(s\\) not in sync within --wait-timeout 1s: ${svc}/web missing`));
    assert.match(r.stderr, /\[no agent running\]/);
    node.startAgent();
    r = await bounded(node, ['apply', '-f', file, '--wait', '--wait-timeout', '60s'], { timeoutMs: 90_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^in sync after \d+\.\d s: 1 component\(s\) of 1 service\(s\)$/m);
    assert.match(r.stderr, new RegExp(`^${svc}/web: in sync$`, 'm'));
    const bad = await node.cli(['apply', '-f', file, '--wait', '--wait-timeout', '10']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /--wait-timeout: must be a duration with a unit/);
  });
});
