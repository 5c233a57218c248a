// The systemd-notify adapter (src/cli/systemd-notify.ts) with a stand-in `systemd-notify` script
// that records its arguments and NOTIFY_SOCKET: one process at a time, messages sent meanwhile
// merged into the next, NOTIFY_SOCKET given to the child only, a missing binary logged once.
import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { systemdNotifier } from '../../src/cli/systemd-notify.js';

const dir = mkdtempSync(join(tmpdir(), 'sd-notify-adapter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A systemd-notify that appends "NOTIFY_SOCKET|args" as a line, after holding on for a moment. */
function standIn(name: string): { bin: string; calls: () => string[] } {
  const out = join(dir, `${name}.calls`);
  const bin = join(dir, name);
  writeFileSync(bin, `#!/bin/sh\nsleep 0.2\nprintf '%s|%s\\n' "$NOTIFY_SOCKET" "$*" >> ${out}\n`);
  chmodSync(bin, 0o755);
  return { bin, calls: () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : []) };
}

function logger(): { log: pino.Logger; errors: string[] } {
  const errors: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void errors.push((JSON.parse(l) as { msg: string }).msg) });
  return { log, errors };
}

describe('systemdNotifier', () => {
  it('runs one systemd-notify at a time; what comes meanwhile goes as one merged message', async () => {
    const s = standIn('merge');
    const { log, errors } = logger();
    const n = systemdNotifier('/run/test/notify', log, s.bin);
    n.send({ READY: '1', STATUS: 'first' });
    n.send({ STATUS: 'second' });
    n.send({ WATCHDOG: '1', STATUS: 'third' });
    await n.close();
    assert.deepEqual(s.calls(), ['/run/test/notify|READY=1 STATUS=first', '/run/test/notify|STATUS=third WATCHDOG=1']);
    assert.deepEqual(errors, []);
    assert.equal(process.env.NOTIFY_SOCKET, undefined, 'the socket is the child\'s, not the agent\'s');
  });

  it('a systemd-notify that cannot run is logged once, not on every ping', async () => {
    const { log, errors } = logger();
    const n = systemdNotifier('/run/test/notify', log, join(dir, 'no-such-systemd-notify'));
    n.send({ READY: '1' });
    await n.close();
    n.send({ WATCHDOG: '1' });
    await n.close();
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(errors[0]!, /^cannot tell systemd: .*ENOENT/);
  });
});
