// agent doctor's systemd check, its pure part (src/doctor/systemd-unit.ts): reading `systemctl
// show` and judging the unit's settings. The real unit is checked in test/e2e/systemd-install.test.ts.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { judgeSystemd, parseShow, UNIT_PROPS } from '../../src/doctor/systemd-unit.js';

const GOOD = parseShow(
  [
    'LoadState=loaded',
    'ActiveState=active',
    'SubState=running',
    'MainPID=123',
    'FragmentPath=/etc/systemd/system/mcp-agent.service',
    'KillMode=process',
    'Restart=always',
    'RestartPreventExitStatus=5',
    'ExecMainStatus=0',
  ].join('\n'),
);

describe('doctor: the systemd check', () => {
  it('parses systemctl show lines, values may hold = and spaces', () => {
    assert.deepEqual(parseShow('A=1\nEnvironment=X=1 Y=2\n\nnot a line\n'), { A: '1', Environment: 'X=1 Y=2' });
  });

  it('no systemd as PID 1: ok, says so, nothing else is judged', () => {
    const r = judgeSystemd({ booted: false, pid1: 'bash' });
    assert.equal(r.status, 'ok');
    assert.match(r.detail, /not booted with systemd \(PID 1 is bash\)/);
    assert.equal(r.facts?.systemd, false);
  });

  it('the installed unit with the expected settings: ok, active with its MainPID', () => {
    const r = judgeSystemd({ booted: true, shown: GOOD });
    assert.equal(r.status, 'ok', r.detail);
    assert.match(r.detail, /active, MainPID 123/);
    assert.equal(r.facts?.KillMode, 'process');
  });

  it('an inactive unit with the expected settings is still ok (the doctor may run before start)', () => {
    const r = judgeSystemd({ booted: true, shown: { ...GOOD, ActiveState: 'inactive', MainPID: '0' } });
    assert.equal(r.status, 'ok');
    assert.match(r.detail, /is inactive/);
  });

  it('each wrong setting warns, named with what goes wrong, and the fix names the setting', () => {
    const r = judgeSystemd({ booted: true, shown: { ...GOOD, KillMode: 'control-group' } });
    assert.equal(r.status, 'warn');
    assert.match(r.detail, /KillMode=control-group, want process: otherwise `systemctl stop`/);
    assert.match(r.fix ?? '', /KillMode=process/);
    const all = judgeSystemd({ booted: true, shown: { ...GOOD, KillMode: 'mixed', Restart: 'on-failure', RestartPreventExitStatus: '' } });
    assert.equal(all.status, 'warn');
    for (const s of ['KillMode=mixed', 'Restart=on-failure', 'RestartPreventExitStatus=(empty)']) assert.ok(all.detail.includes(s), all.detail);
    assert.match(all.fix ?? '', /KillMode=process, Restart=always, RestartPreventExitStatus=5/);
  });

  it('RestartPreventExitStatus may list more statuses and signals: 5 among them is enough; 50 is not 5', () => {
    assert.equal(judgeSystemd({ booted: true, shown: { ...GOOD, RestartPreventExitStatus: '5 7 SIGTERM' } }).status, 'ok');
    assert.equal(judgeSystemd({ booted: true, shown: { ...GOOD, RestartPreventExitStatus: '50' } }).status, 'warn');
  });

  it('systemd without the unit, a failed unit, or no answer: warn with a fix, never fail', () => {
    const absent = judgeSystemd({ booted: true, shown: { LoadState: 'not-found', ActiveState: 'inactive' } });
    assert.equal(absent.status, 'warn');
    assert.match(absent.detail, /mcp-agent\.service is not-found/);
    assert.match(absent.fix ?? '', /systemctl enable --now mcp-agent/);
    const failed = judgeSystemd({ booted: true, shown: { ...GOOD, ActiveState: 'failed', ExecMainStatus: '5' } });
    assert.equal(failed.status, 'warn');
    assert.match(failed.detail, /failed \(exit 5\)/);
    const silent = judgeSystemd({ booted: true, error: 'Failed to connect to bus' });
    assert.equal(silent.status, 'warn');
    assert.match(silent.detail, /Failed to connect to bus/);
  });

  it('the unit in contrib/systemd has exactly the settings the check expects', () => {
    const unit = readFileSync(new URL('../../contrib/systemd/mcp-agent.service', import.meta.url), 'utf8');
    const set = parseShow(unit.split('\n').filter((l) => !l.startsWith('#')).join('\n'));
    const r = judgeSystemd({ booted: true, shown: { ...set, LoadState: 'loaded', ActiveState: 'active' } });
    assert.equal(r.status, 'ok', r.detail);
    for (const p of ['KillMode', 'Restart', 'RestartPreventExitStatus']) assert.ok((UNIT_PROPS as readonly string[]).includes(p));
  });
});
