// Why a VM ended: QMP SHUTDOWN reasons recorded in the state dir and read back as an exit code
// for the restart policy (only a guest's own poweroff counts as a clean exit).
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { describeShutdown, readExit, recordExit } from '../../src/runtime/qemu/exit.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-qemu-exit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const shutdown = (data: Record<string, unknown>) => ({ event: 'SHUTDOWN', data, timestamp: { seconds: 1_700_000_000, microseconds: 0 } });

describe('VM exit reasons', () => {
  it('only guest-shutdown is exit 0; resets, panics and host ends are failures', () => {
    assert.equal(describeShutdown({ reason: 'guest-shutdown' }).exitCode, 0);
    for (const reason of ['guest-reset', 'guest-panic', 'host-signal', 'host-qmp-quit', 'something-new']) {
      assert.equal(describeShutdown({ reason }).exitCode, 1, reason);
    }
    assert.match(describeShutdown({ reason: 'something-new' }).why, /something-new/);
  });

  it('a recorded SHUTDOWN event is read back; no record or a broken one reads as unknown', () => {
    assert.equal(readExit(dir), undefined);
    recordExit(dir, shutdown({ guest: true, reason: 'guest-shutdown' }));
    assert.deepEqual(readExit(dir), { exitCode: 0, why: 'the guest powered itself off' });
    recordExit(dir, shutdown({ guest: false, reason: 'host-signal' }));
    assert.equal(readExit(dir)?.exitCode, 1);
    writeFileSync(join(dir, 'exit.json'), '{"reason": 5}');
    assert.equal(readExit(dir), undefined);
  });

  it('recording into a state dir that is gone does not throw', () => {
    assert.doesNotThrow(() => recordExit(join(dir, 'removed'), shutdown({ guest: true, reason: 'guest-shutdown' })));
  });
});
