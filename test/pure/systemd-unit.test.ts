// The shipped systemd unit: valid for systemd itself, and consistent with the code it runs.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { RegistryBusyError } from '../../src/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNIT = readFileSync(join(ROOT, 'contrib/systemd/mcp-agent.service'), 'utf8');
const setting = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(UNIT)?.[1];

describe('contrib/systemd/mcp-agent.service', () => {
  it('passes systemd-analyze verify (with this checkout as /opt/mcp-agent)', async (t) => {
    if (!existsSync('/usr/bin/systemd-analyze')) return t.skip('systemd-analyze is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'agent-unit-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'mcp-agent.service');
    writeFileSync(file, UNIT.replaceAll('/opt/mcp-agent/', ROOT).replaceAll('/opt/mcp-agent', ROOT.replace(/\/$/, '')));
    const r = await execa('systemd-analyze', ['verify', file], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /mcp-agent\.service:/, r.stderr);
  });

  it('stops the agent alone (workloads outlive it), and does not retry when another agent holds the registry', () => {
    assert.equal(setting('KillMode'), 'process');
    assert.equal(setting('KillSignal'), 'SIGTERM');
    assert.equal(setting('RestartPreventExitStatus'), String(new RegistryBusyError(1, '').exitCode));
    assert.match(setting('ExecStart') ?? '', / \/opt\/mcp-agent\/bin\/agent\.js run$/);
    assert.ok(existsSync(join(ROOT, 'bin/agent.js')));
  });

  it('is a notify service with a watchdog, and lets systemd-notify (a child of the agent) speak for it', () => {
    assert.equal(setting('Type'), 'notify');
    // src/cli/systemd-notify.ts sends from a child process: with NotifyAccess=main systemd drops every message.
    assert.equal(setting('NotifyAccess'), 'all');
    assert.match(setting('WatchdogSec') ?? '', /^[1-9]\d*s?$/);
  });
});
