// Process identity from /proc: a pid plus its start time, so a reused pid is not taken for the old process.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { identityLive, identityOf, selfIdentity } from '../../src/agent/process-identity.js';

describe('process identity', () => {
  it('names this process, and it is live', () => {
    const me = selfIdentity();
    assert.equal(me.pid, process.pid);
    assert.ok(me.start > 0);
    assert.match(me.boot, /^[0-9a-f-]{36}$/);
    assert.ok(identityLive(me));
  });

  it('is not live with another start time (what a reused pid looks like)', () => {
    const me = selfIdentity();
    assert.equal(identityLive({ ...me, start: me.start + 1 }), false);
    assert.equal(identityLive({ ...me, boot: '00000000-0000-0000-0000-000000000000' }), false);
  });

  it('is not live once the process has exited and been reaped', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const id = identityOf(child.pid!);
    assert.ok(id && identityLive(id), 'the child is live while it runs');
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(identityLive(id), false);
  });
});
