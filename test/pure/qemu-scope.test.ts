// A VM's systemd scope as data (src/runtime/qemu/scope.ts, and what launch.ts records of it): the
// setting's decision from the host's facts, the unit name, the systemd-run command line. Pure: no
// systemd, no QEMU. The real scopes are test/e2e/systemd-scopes.test.ts.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { manifestSchemas } from '../../src/manifest/schema.js';
import { describeLaunch } from '../../src/runtime/qemu/launch.js';
import { isUnitTaken, scopeArgs, scopeMode, scopeUnit, SCOPE_ON_RULE, type HostSystemd } from '../../src/runtime/qemu/scope.js';
import { VmRecordSchema } from '../../src/runtime/qemu/state.js';

const SYSTEMD: HostSystemd = { booted: true, systemdRun: true, root: true };
const PLAIN: HostSystemd = { booted: false, systemdRun: false, root: true };
const host = (h: HostSystemd) => () => h;

describe('scopeMode: qemu.systemd_scope against the host', () => {
  it('auto: scopes only where systemd is PID 1, systemd-run is there and the agent is root', () => {
    assert.deepEqual(scopeMode('auto', host(SYSTEMD), 64), { on: true, overheadMib: 64 });
    assert.deepEqual(scopeMode('auto', host(PLAIN), 64), { on: false });
    assert.deepEqual(scopeMode('auto', host({ ...SYSTEMD, systemdRun: false }), 64), { on: false });
    assert.deepEqual(scopeMode('auto', host({ ...SYSTEMD, root: false }), 64), { on: false });
  });

  it('on: scopes under systemd; without it a problem naming the rule, never a silent fallback', () => {
    assert.deepEqual(scopeMode('on', host(SYSTEMD), 32), { on: true, overheadMib: 32 });
    assert.deepEqual(scopeMode('on', host(PLAIN), 32), { on: false, problem: SCOPE_ON_RULE });
    assert.match(SCOPE_ON_RULE, /\/run\/systemd\/system/);
    const noRun = scopeMode('on', host({ ...SYSTEMD, systemdRun: false }), 32);
    assert.equal(noRun.on, false);
    assert.match(noRun.on ? '' : noRun.problem ?? '', /systemd-run is not on PATH/);
  });

  it('off: never, and the host is not even looked at', () => {
    assert.deepEqual(scopeMode('off', () => assert.fail('off must not probe the host'), 64), { on: false });
  });
});

describe('scopeUnit', () => {
  it('is mcp-vm-<workload>.scope, workload names as they are', () => {
    assert.equal(scopeUnit('web-vm'), 'mcp-vm-web-vm.scope');
  });

  it('escapes what a unit name cannot hold, as systemd-escape does', () => {
    assert.equal(scopeUnit('a b/c'), 'mcp-vm-a\\x20b\\x2fc.scope');
  });
});

describe('scopeArgs', () => {
  const s = { workload: 'web-vm', service: 'web', component: 'vm', memoryMib: 256, vcpus: 2, overheadMib: 64 };

  it('a scope in machine.slice, bounded by guest memory + overhead and 100% per vCPU, then QEMU as it was', () => {
    const argv = scopeArgs(s, 'qemu-system-x86_64', ['-name', 'guest=web-vm', '-daemonize']);
    assert.deepEqual(argv, [
      '--scope', '--quiet', '--collect',
      '--unit', 'mcp-vm-web-vm.scope',
      '--slice', 'machine.slice',
      '--description', 'mcp-agent VM web/vm (workload web-vm)',
      '-p', 'MemoryMax=320M',
      '-p', 'CPUQuota=200%',
      '--', 'qemu-system-x86_64', '-name', 'guest=web-vm', '-daemonize',
    ]);
  });

  it('one vCPU is one CPU', () => {
    assert.ok(scopeArgs({ ...s, vcpus: 1 }, 'q', []).includes('CPUQuota=100%'));
  });
});

describe('describeLaunch with a scope', () => {
  const spec = manifestSchemas().ComponentSpecSchema.parse({ service: 'web', name: 'vm', runtime: 'unikernel', network: 'auto', memory: 96, kernel: 'vmlinux', initrd: 'initrd.gz' });
  const base = {
    w: { name: 'web-vm', key: { service: 'web', component: 'vm' }, specHash: 'h1', spec, vm: { files: { kernel: '/i/vmlinux', initrd: '/i/initrd.gz' }, hostKey: 'ssh-ed25519 AAAA', net: { mode: 'slirp' as const, sshPort: 10042, forwards: [] } } },
    dir: '/var/lib/agent/vm/web-vm',
    agentId: 'a1',
    accel: 'tcg' as const,
    disk: undefined,
    sshUser: 'root',
    baseCmdline: 'console=ttyS0',
    now: new Date('2026-01-02T03:04:05.000Z'),
  };

  it('records the scope (what a stop ends) and sizes it from the spec, its defaults included', () => {
    const d = describeLaunch({ ...base, scope: { overheadMib: 64 } });
    assert.equal(d.record.scope, 'mcp-vm-web-vm.scope');
    assert.ok(VmRecordSchema.safeParse(d.record).success);
    // No vcpus in the spec: QEMU's own default (1 vCPU) is what is bounded.
    assert.deepEqual(d.scope, { workload: 'web-vm', service: 'web', component: 'vm', memoryMib: 96, vcpus: 1, overheadMib: 64 });
  });

  it('without scopes: no scope, and the record is as before (an older agent reads it)', () => {
    const d = describeLaunch(base);
    assert.equal(d.scope, undefined);
    assert.equal('scope' in d.record, false);
  });
});

describe('isUnitTaken', () => {
  it("recognises systemd-run's refusal of a name still loaded", () => {
    assert.equal(isUnitTaken('Failed to start transient scope unit: Unit mcp-vm-x.scope was already loaded or has a fragment file.'), true);
    assert.equal(isUnitTaken('Failed to start transient scope unit: Access denied'), false);
  });
});

describe('qemu.systemd_scope in the settings', () => {
  it('is auto, on or off; anything else is refused naming the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qemu-scope-test-'));
    try {
      const file = (text: string): string => (writeFileSync(join(dir, 'agent.toml'), text), join(dir, 'agent.toml'));
      const load = (text: string) => loadConfig({ configPath: file(text), env: {}, flags: {}, cwd: dir });
      assert.equal(load('').qemu.systemd_scope, 'auto');
      assert.equal(load('[qemu]\nsystemd_scope = "off"\n').qemu.systemd_scope, 'off');
      let caught: unknown;
      try {
        load('[qemu]\nsystemd_scope = "yes"\n');
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof ValidationError, String(caught));
      assert.deepEqual(caught.issues.map((i) => [i.field, i.rule]), [['qemu.systemd_scope', 'must be auto, on or off']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
