// agent doctor's pure parts: the report (order, summary, exit code, printing), the rules it
// judges by, the runner's bounds (a check that throws or hangs is that check's fail), and the
// constants that must agree with the project's own files (package.json, examples/demo.toml).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadManifestFile } from '../../src/manifest/load.js';
import type { NetStatus } from '../../src/net/types.js';
import { buildReport, CHECK_ORDER, exitCodeOf, formatReport, reportJson, type CheckResult, type CheckStatus } from '../../src/doctor/report.js';
import {
  DEMO_VM_FILES, DISK_FAIL_BYTES, DISK_WARN_BYTES, judgeAccel, judgeBridge, judgeDisk, judgeNode, judgeUlimits, MIN_NODE, parseLimits, PROBE_IMAGE, TCG_COST,
} from '../../src/doctor/rules.js';
import { runChecks, type Check } from '../../src/doctor/run.js';
import type { DoctorContext } from '../../src/doctor/checks/context.js';

const result = (name: string, status: CheckStatus, fix?: string): CheckResult => ({ name, status, detail: `${name} is ${status}`, fix });

describe('doctor report', () => {
  it('orders the checks by CHECK_ORDER, unknown names last by name', () => {
    const r = buildReport([result('zeta', 'ok'), result('disk', 'ok'), result('node', 'ok'), result('alpha', 'ok'), result('podman', 'ok')]);
    assert.deepEqual(r.checks.map((c) => c.name), ['node', 'podman', 'disk', 'alpha', 'zeta']);
    assert.equal(CHECK_ORDER[0], 'node');
  });

  it('warnings do not fail; one fail does (exit 1)', () => {
    const warned = buildReport([result('node', 'ok'), result('accelerator', 'warn', 'use KVM')]);
    assert.equal(warned.ok, true);
    assert.equal(exitCodeOf(warned), 0);
    assert.deepEqual(warned.summary, { ok: 1, warn: 1, fail: 0 });
    const failed = buildReport([result('node', 'ok'), result('podman', 'fail', 'install podman'), result('accelerator', 'warn', 'x')]);
    assert.equal(failed.ok, false);
    assert.equal(exitCodeOf(failed), 1);
    assert.deepEqual(failed.summary, { ok: 1, warn: 1, fail: 1 });
  });

  it('an ok check carries no fix', () => {
    const r = buildReport([result('node', 'ok', 'nothing to do')]);
    assert.equal(r.checks[0]!.fix, undefined);
  });

  it('JSON has every key, null for a missing fix', () => {
    const doc = JSON.parse(reportJson(buildReport([result('node', 'ok'), { ...result('podman', 'fail', 'install podman'), facts: { container: 'c1' } }]))) as {
      ok: boolean;
      summary: Record<string, number>;
      checks: Array<{ name: string; status: string; detail: string; fix: string | null; facts: Record<string, unknown> }>;
    };
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.checks[0], { name: 'node', status: 'ok', detail: 'node is ok', fix: null, facts: {} });
    assert.deepEqual(doc.checks[1], { name: 'podman', status: 'fail', detail: 'podman is fail', fix: 'install podman', facts: { container: 'c1' } });
  });

  it('the table: one line per check, its fix under it, the summary last', () => {
    const text = formatReport(buildReport([result('node', 'ok'), result('podman', 'fail', 'install podman'), result('accelerator', 'warn', 'use KVM')]));
    const lines = text.split('\n');
    assert.match(lines[0]!, /^ok\s+node\s+node is ok$/);
    assert.match(lines[1]!, /^FAIL\s+podman\s+podman is fail$/);
    assert.match(lines[2]!, /^\s+fix: install podman$/);
    assert.match(lines[3]!, /^WARN\s+accelerator\s+accelerator is warn$/);
    assert.equal(lines.at(-1), '1 ok, 1 warning, 1 failed (exit 1)');
  });
});

describe('doctor rules', () => {
  it('node: the minimum passes, older fails with a fix', () => {
    assert.equal(judgeNode(MIN_NODE).status, 'ok');
    assert.equal(judgeNode('v22.1.0').status, 'ok');
    assert.equal(judgeNode('20.9.9').status, 'fail');
    assert.match(judgeNode('18.19.0').fix ?? '', /20\.10/);
  });

  it('disk: fail below 64 MiB, warn below 1 GiB, ok above', () => {
    assert.equal(judgeDisk(DISK_FAIL_BYTES - 1, '/v', '/v').status, 'fail');
    assert.equal(judgeDisk(DISK_FAIL_BYTES, '/v', '/v').status, 'warn');
    assert.equal(judgeDisk(DISK_WARN_BYTES - 1, '/v', '/v').status, 'warn');
    assert.equal(judgeDisk(DISK_WARN_BYTES, '/v', '/v').status, 'ok');
    assert.match(judgeDisk(DISK_WARN_BYTES, '/v/vm', '/v').detail, /measured at \/v/);
  });

  it('accelerator: KVM only with /dev/kvm AND vmx/svm; TCG says its cost', () => {
    assert.equal(judgeAccel('auto', { kvmOpens: true, cpuHasVirt: true }).status, 'ok');
    const nested = judgeAccel('auto', { kvmOpens: true, cpuHasVirt: false });
    assert.equal(nested.status, 'warn');
    assert.ok(nested.detail.includes(TCG_COST), nested.detail);
    assert.match(nested.detail, /no vmx\/svm/);
    assert.equal(nested.facts?.accel, 'tcg');
    assert.equal(judgeAccel('auto', { kvmOpens: false, cpuHasVirt: true }).status, 'warn');
    assert.equal(judgeAccel('kvm', { kvmOpens: true, cpuHasVirt: false }).status, 'fail', 'kvm forced where it does not work');
    const tcg = judgeAccel('tcg', { kvmOpens: false, cpuHasVirt: false });
    assert.equal(tcg.status, 'ok', 'TCG chosen on purpose');
    assert.ok(tcg.detail.includes(TCG_COST));
  });

  const LIMITS = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             96365                96365                processes ',
    'Max open files            20000                20000                files     ',
    'Max core file size        0                    unlimited            bytes     ',
  ].join('\n');

  it('ulimits: parsed from /proc/self/limits', () => {
    const hard = parseLimits(LIMITS);
    assert.equal(hard.get('nofile'), 20000);
    assert.equal(hard.get('nproc'), 96365);
    assert.equal(hard.get('core'), null, 'unlimited');
  });

  it('ulimits: above the hard limit fails without CAP_SYS_RESOURCE, passes with it', () => {
    const hard = parseLimits(LIMITS);
    assert.equal(judgeUlimits(['nofile=20000:20000', 'nproc=32768:32768'], hard, false, undefined).status, 'ok');
    const over = judgeUlimits(['nofile=1048576:1048576'], hard, false, undefined);
    assert.equal(over.status, 'fail');
    assert.match(over.detail, /nofile 1048576 > 20000/);
    assert.equal(judgeUlimits(['nofile=1048576:1048576'], hard, true, undefined).status, 'ok');
    assert.equal(judgeUlimits(['nofile=-1'], hard, false, undefined).status, 'fail', '-1 is unlimited');
    assert.equal(judgeUlimits(['core=-1'], hard, false, undefined).status, 'ok', 'unlimited hard limit');
    assert.equal(judgeUlimits(['rttime=5'], hard, false, undefined).status, 'warn', 'a limit the doctor cannot read');
    assert.equal(judgeUlimits([], hard, false, undefined).status, 'warn', "podman's defaults exceed the hard limit");
    assert.equal(judgeUlimits([], hard, false, '/etc/containers.conf').status, 'ok');
  });

  const net = (o: { present: boolean; loaded?: boolean; agents?: Record<string, number>; up?: boolean }): NetStatus => ({
    bridge: { name: 'mcp-br0', present: o.present, created_by_agent: true, address: o.present ? '10.99.0.1/24' : null, up: o.up ?? o.present },
    rules: { loaded: o.loaded ?? false, detail: o.loaded ? 'loaded' : 'table inet mcp is missing' },
    agents: o.agents ?? {},
  });

  it('bridge: absent is fine (SLIRP); present needs its rules; shared warns', () => {
    assert.equal(judgeBridge(net({ present: false })).status, 'ok');
    assert.match(judgeBridge(net({ present: false })).detail, /SLIRP/);
    const bare = judgeBridge(net({ present: true, loaded: false }));
    assert.equal(bare.status, 'fail');
    assert.match(bare.fix ?? '', /agent net up/);
    assert.equal(judgeBridge(net({ present: true, loaded: true, agents: { a: 1 } })).status, 'ok');
    assert.equal(judgeBridge(net({ present: true, loaded: true, agents: { a: 1, b: 2 } })).status, 'warn');
    assert.equal(judgeBridge(net({ present: true, loaded: true, up: false })).status, 'warn');
  });

  it('constants agree with package.json engines and examples/demo.toml', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
    assert.equal(pkg.engines.node, `>=${MIN_NODE.replace(/\.0$/, '')}`);
    const demo = loadManifestFile(new URL('../../examples/demo.toml', import.meta.url).pathname);
    const containers = demo.components.filter((c) => c.runtime === 'container');
    assert.ok(containers.length > 0 && containers.every((c) => c.image === PROBE_IMAGE), 'the demo runs the probe image');
    const vm = demo.components.find((c) => c.runtime === 'unikernel');
    assert.deepEqual({ kernel: vm?.kernel, initrd: vm?.initrd }, DEMO_VM_FILES);
  });
});

describe('doctor runner', () => {
  const ctx = {} as DoctorContext; // the fake checks below never read it
  const check = (name: string, run: () => Promise<CheckResult>, timeoutMs = 5000): Check => ({ name, run, timeoutMs: () => timeoutMs });

  it('a check that throws, or never answers, is that check\'s fail; the others still answer', async () => {
    const results = await runChecks(ctx, [
      check('good', () => Promise.resolve(result('good', 'ok'))),
      check('throws', () => Promise.reject(new Error('boom\nstack'))),
      check('sync-throws', () => {
        throw new Error('at once');
      }),
      check('hangs', () => new Promise<CheckResult>(() => undefined), 50),
    ]);
    const by = new Map(results.map((r) => [r.name, r]));
    assert.equal(by.get('good')?.status, 'ok');
    assert.equal(by.get('throws')?.status, 'fail');
    assert.equal(by.get('throws')?.detail, 'the check could not finish: boom');
    assert.equal(by.get('sync-throws')?.status, 'fail');
    assert.equal(by.get('hangs')?.status, 'fail');
    assert.match(by.get('hangs')?.detail ?? '', /no answer within/);
    assert.ok(by.get('hangs')?.fix);
  });
});
