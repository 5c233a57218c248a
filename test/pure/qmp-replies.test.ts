// The commands of a QMP connection waiting for their reply (src/runtime/qmp/replies.ts): each is
// settled exactly once, by its reply, its timeout, or the connection closing.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { QmpError } from '../../src/runtime/qmp/errors.js';
import { PendingReplies } from '../../src/runtime/qmp/replies.js';

const rejectsWith = async (p: Promise<unknown>, kind: QmpError['kind'], message: RegExp): Promise<void> => {
  await assert.rejects(p, (e: unknown) => e instanceof QmpError && e.kind === kind && message.test(e.message));
};

describe('PendingReplies', () => {
  it('gives each command its own id, written only once the reply is expected', async () => {
    const r = new PendingReplies('/s');
    const written: string[] = [];
    const a = r.expect('query-status', 1000, (id) => written.push(id));
    const b = r.expect('quit', 1000, (id) => written.push(id));
    assert.deepEqual(written, ['agent-1', 'agent-2']);
    r.settle({ type: 'return', id: 'agent-2', value: {} });
    r.settle({ type: 'return', id: 'agent-1', value: { running: true } });
    assert.deepEqual(await a, { running: true });
    assert.deepEqual(await b, {});
  });

  it("QEMU's error is a command-error with its class and description", async () => {
    const r = new PendingReplies('/s');
    const p = r.expect('nope', 1000, () => undefined);
    r.settle({ type: 'error', id: 'agent-1', errorClass: 'CommandNotFound', desc: "The command nope has not been found" });
    await assert.rejects(p, (e: unknown) => e instanceof QmpError && e.kind === 'command-error' && e.errorClass === 'CommandNotFound' && e.command === 'nope');
  });

  it('a reply without an id goes to the oldest command waiting', async () => {
    const r = new PendingReplies('/s');
    const a = r.expect('a', 1000, () => undefined);
    const b = r.expect('b', 1000, () => undefined);
    r.settle({ type: 'return', id: undefined, value: 'first' });
    r.settle({ type: 'return', id: undefined, value: 'second' });
    assert.equal(await a, 'first');
    assert.equal(await b, 'second');
  });

  it('times out, and a late reply to it is dropped (it settles nothing else)', async () => {
    const r = new PendingReplies('/s');
    await rejectsWith(r.expect('slow', 5, () => undefined), 'timeout', /slow: no reply within 5 ms/);
    const next = r.expect('next', 1000, () => undefined);
    r.settle({ type: 'return', id: 'agent-1', value: 'late' });
    r.settle({ type: 'return', id: 'agent-2', value: 'mine' });
    assert.equal(await next, 'mine');
  });

  it('rejects every command still waiting when the connection closes, and only those', async () => {
    const r = new PendingReplies('/s');
    const done = r.expect('done', 1000, () => undefined);
    r.settle({ type: 'return', id: 'agent-1', value: 1 });
    const a = r.expect('a', 1000, () => undefined);
    const b = r.expect('b', 1000, () => undefined);
    r.rejectAll((command) => new QmpError('closed', '/s', command, 'connection closed before the reply'));
    assert.equal(await done, 1);
    await rejectsWith(a, 'closed', / a: connection closed/);
    await rejectsWith(b, 'closed', / b: connection closed/);
  });

  it('a write that throws rejects its command', async () => {
    const r = new PendingReplies('/s');
    await assert.rejects(r.expect('x', 5, () => { throw new Error('write failed'); }), /write failed/);
  });
});
