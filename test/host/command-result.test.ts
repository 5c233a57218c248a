// What runBounded gives back for a command that ran (real processes: sh, cat): its output with the
// final newline stripped, its exit, a failure as CommandFailedError (or a result with reject:
// false), a tool that is not there as ENOENT, input on stdin, settings added to the environment.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { CommandFailedError, failureLine, runBounded, type CommandBound } from '../../src/runtime/command.js';

const bound: CommandBound = { runtime: 'test', operation: 'run', timeoutMs: 10_000 };

describe('runBounded results', () => {
  it('a command that succeeds: its stdout and stderr, one final newline stripped, exit 0', async () => {
    const r = await runBounded('sh', ['-c', 'printf "a\\nb\\n\\n"; printf "warn\\n" >&2'], bound);
    assert.equal(r.stdout, 'a\nb\n');
    assert.equal(r.stderr, 'warn');
    assert.equal(r.exitCode, 0);
    assert.equal(r.failed, false);
    assert.equal(r.signal, undefined);
  });

  it('a command that fails throws CommandFailedError with its exit code, stderr and a one-line message', async () => {
    const err = await runBounded('sh', ['-c', 'echo partial; echo "Error: no such container" >&2; exit 125'], bound).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CommandFailedError, String(err));
    assert.equal(err.exitCode, 125);
    assert.equal(err.stdout, 'partial');
    assert.equal(err.stderr, 'Error: no such container');
    assert.equal(err.shortMessage, 'Command failed with exit code 125: sh -c echo partial; echo "Error: no such container" >&2; exit 125');
    assert.match(err.message, /exit code 125[\s\S]*Error: no such container$/);
    assert.equal(failureLine(err), 'Error: no such container');
  });

  it('with reject: false a failure resolves, failed and with its exit code', async () => {
    const r = await runBounded('sh', ['-c', 'exit 3'], bound, { reject: false });
    assert.equal(r.failed, true);
    assert.equal(r.exitCode, 3);
    // Nothing on stderr: how it failed is the line.
    assert.equal(failureLine(r), 'Command failed with exit code 3: sh -c exit 3');
  });

  it('a command killed by a signal reports it, with no exit code', async () => {
    const r = await runBounded('sh', ['-c', 'kill -TERM $$'], bound, { reject: false });
    assert.equal(r.failed, true);
    assert.equal(r.exitCode, undefined);
    assert.equal(r.signal, 'SIGTERM');
    assert.match(r.shortMessage, /killed with SIGTERM/);
  });

  it('a tool that is not there fails with code ENOENT, thrown or returned', async () => {
    const missing = '/nonexistent/agent-test-tool';
    const err = await runBounded(missing, ['x'], bound).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CommandFailedError, String(err));
    assert.equal(err.code, 'ENOENT');
    const r = await runBounded(missing, [], bound, { reject: false });
    assert.equal(r.failed, true);
    assert.equal(r.code, 'ENOENT');
    assert.equal(r.exitCode, undefined);
  });

  it('input goes to stdin and is closed; without it stdin is empty', async () => {
    assert.equal((await runBounded('cat', [], bound, { input: 'line 1\nline 2\n' })).stdout, 'line 1\nline 2');
    assert.equal((await runBounded('cat', [], bound)).stdout, '');
    // A command that exits without reading its input: no EPIPE reaches the caller.
    assert.equal((await runBounded('true', [], bound, { input: 'x'.repeat(1 << 20) })).exitCode, 0);
  });

  it('env is added to the agent environment, not put in its place', async () => {
    const r = await runBounded('sh', ['-c', 'echo "$AGENT_TEST_VAR:$PATH"'], bound, { env: { AGENT_TEST_VAR: 'set' } });
    assert.equal(r.stdout, `set:${process.env.PATH}`);
  });
});
