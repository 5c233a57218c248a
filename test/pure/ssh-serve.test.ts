// ssh-serve: SSH_ORIGINAL_COMMAND split like a POSIX shell (no expansion), and only the allowed verbs.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { splitWords, sshServeArgs } from '../../src/cli/ssh-serve.js';

function refused(fn: () => unknown, rule: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ValidationError && e.exitCode === 2 && rule.test(e.message));
}

describe('splitWords', () => {
  it('splits on blanks and keeps quoted text whole and literal', () => {
    assert.deepEqual(splitWords('  apply  -f -\t--format json '), ['apply', '-f', '-', '--format', 'json']);
    assert.deepEqual(splitWords(`events --service 'a b' "c d"`), ['events', '--service', 'a b', 'c d']);
    assert.deepEqual(splitWords(`'$HOME' "*.toml" "a;b|c" 'x"y' "it's"`), ['$HOME', '*.toml', 'a;b|c', 'x"y', "it's"]);
    assert.deepEqual(splitWords(`a\\ b "q\\"uote" "back\\\\slash" "keep\\n"`), ['a b', 'q"uote', 'back\\slash', 'keep\\n']);
    assert.deepEqual(splitWords(`x''y "" ''`), ['xy', '', '']);
    assert.deepEqual(splitWords('*'), ['*'], 'no globbing');
  });

  it('refuses shell syntax outside quotes, and unterminated quotes', () => {
    for (const bad of ['status; id', 'status | sh', 'status && id', 'status & id', 'echo $HOME', 'a `id`', 'a > /x', 'a < /x', 'a\nb', 'a \\;']) {
      refused(() => splitWords(bad), /outside quotes: shell syntax is refused/);
    }
    refused(() => splitWords(`'open`), /unterminated single quote/);
    refused(() => splitWords(`"open`), /unterminated double quote/);
    refused(() => splitWords('end\\'), /lone backslash/);
  });
});

describe('sshServeArgs', () => {
  it('drops a leading program word and allows the four verbs', () => {
    assert.deepEqual(sshServeArgs('status --json'), ['status', '--json']);
    assert.deepEqual(sshServeArgs('agent apply --origin master --prune -f - --format json'), ['apply', '--origin', 'master', '--prune', '-f', '-', '--format', 'json']);
    assert.deepEqual(sshServeArgs('/usr/local/bin/agent events -n 5'), ['events', '-n', '5']);
    assert.deepEqual(sshServeArgs('node_modules/x/bin/agent.js plan --json'), ['plan', '--json']);
  });

  it('refuses other verbs, naming them and the rule', () => {
    refused(() => sshServeArgs('rm -rf /'), /runs 'rm': a master's key may run only apply, status, events, plan/);
    refused(() => sshServeArgs('agent delete web'), /runs 'delete'/);
    refused(() => sshServeArgs('agent run'), /runs 'run'/);
    refused(() => sshServeArgs('ssh-serve'), /runs 'ssh-serve'/);
    refused(() => sshServeArgs(''), /names no verb/);
  });

  it('refuses global options anywhere: the forced command sets them', () => {
    refused(() => sshServeArgs('--db /other status'), /sets --db: global options are fixed by the forced command/);
    refused(() => sshServeArgs('status --db=/other'), /sets --db/);
    refused(() => sshServeArgs('agent --config /tmp/x.toml status'), /sets --config/);
    refused(() => sshServeArgs('status --log-level debug'), /sets --log-level/);
  });
});
