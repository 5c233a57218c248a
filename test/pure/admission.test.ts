// Host resource admission (src/agent/admission.ts) through plan(), on pure inputs: what fits and
// what does not, the order that decides who wins, a replace freeing its old share, QEMU's
// overhead, the default memory of containers; the host readers' parsing, the settings' rules, and
// how status, plan and the metrics show it.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { capacityOf, shareOf, type AdmissionInput, type AdmissionSettings } from '../../src/agent/admission.js';
import { admissionInput, parseCpuList, parseMemTotal } from '../../src/agent/capacity.js';
import { passReport } from '../../src/agent/metrics-sink.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { planDocument, planPending } from '../../src/agent/plan-report.js';
import { plan, type PlanInput, type PlanResult, type RuntimeListing } from '../../src/agent/planner.js';
import { loadConfig } from '../../src/config/config.js';
import { formatPlan, resourcesLine } from '../../src/cli/format.js';
import { ValidationError } from '../../src/errors.js';
import { specHash } from '../../src/identity.js';
import type { ComponentSpec, RuntimeKind } from '../../src/manifest/schema.js';
import type { InstanceRecord } from '../../src/registry/index.js';
import { desired, observedFor, ok, record, spec, validRow } from '../helpers/spec.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const SETTINGS: AdmissionSettings = { reservedMemoryMib: 512, cpuOvercommit: 4, defaultContainerMemoryMib: 0, qemuOverheadMib: 64 };
/** This machine's kind: 24105 MiB MemTotal, 2 CPUs → 23593 MiB and 8 vCPUs to admit. */
const HOST: AdmissionInput = { host: { memTotalMib: 24_105, onlineCpus: 2 }, settings: SETTINGS };

const vm = (service: string, name: string, memory: number, over: Partial<ComponentSpec> = {}): ComponentSpec => spec(service, name, { runtime: 'unikernel', image: 'guest.img', cmd: [], memory, ...over });

function run(specs: ComponentSpec[], o: { observed?: Partial<Record<RuntimeKind, RuntimeListing>>; instances?: InstanceRecord[]; admission?: AdmissionInput; busy?: Set<string> } = {}): PlanResult {
  const input: PlanInput = {
    desired: desired(specs.map(validRow)),
    observed: o.observed ?? { container: ok(), unikernel: ok() },
    instances: o.instances ?? [],
    now: NOW,
    stableAfterMs: 30_000,
    admission: o.admission ?? HOST,
    ...(o.busy ? { busy: o.busy } : {}),
  };
  return plan(input);
}

const started = (r: PlanResult): string[] => r.actions.map((a) => `${a.type}:${a.workload}`);
const row = (r: PlanResult, workload: string) => r.assessments.find((a) => a.workload === workload)!;

describe('admission: what fits', () => {
  it('three 16000 MiB VMs on a 24 GiB node: the first in order starts, the others are pending with why', () => {
    const r = run([vm('adm', 'c', 16_000), vm('adm', 'a', 16_000), vm('adm', 'b', 16_000)]);
    assert.deepEqual(started(r), ['start:adm-a']);
    for (const w of ['adm-b', 'adm-c']) {
      const a = row(r, w);
      assert.equal(a.drift, 'pending');
      assert.equal(a.action, undefined);
      // 23593 capacity - (16000 + 64) admitted = 7529 free
      assert.equal(a.reason, 'does not fit: needs 16064 MiB, 7529 MiB free of 23593 (reserved 512)');
    }
    assert.deepEqual(r.notAdmitted.map((n) => n.action.workload), ['adm-b', 'adm-c']);
    assert.deepEqual(r.resources?.memory, { total_mib: 24_105, reserved_mib: 512, capacity_mib: 23_593, allocated_mib: 16_064 });
    assert.deepEqual(r.resources?.vcpus, { online_cpus: 2, overcommit: 4, capacity: 8, allocated: 1 });
  });

  it('what runs holds its share: a running VM leaves room for no second one, and a small one still fits after a big one that does not', () => {
    const a = vm('adm', 'a', 16_000);
    const r = run([a, vm('adm', 'b', 16_000), vm('adm', 'c', 1000)], { observed: { container: ok(), unikernel: ok(observedFor(a)) }, instances: [record(a)] });
    assert.deepEqual(started(r), ['start:adm-c']);
    assert.equal(row(r, 'adm-b').drift, 'pending');
    assert.equal(r.resources?.memory.allocated_mib, 16_064 + 1064);
  });

  it('a starting VM holds its share too, and so does a start under way that is not listed yet', () => {
    const a = vm('adm', 'a', 16_000);
    const booting = run([a, vm('adm', 'b', 16_000)], { observed: { container: ok(), unikernel: ok(observedFor(a, { state: 'starting' })) }, instances: [record(a)] });
    assert.equal(row(booting, 'adm-b').drift, 'pending');
    const underWay = run([a, vm('adm', 'b', 16_000)], { busy: new Set(['adm/a']) });
    assert.deepEqual(started(underWay), []);
    assert.equal(row(underWay, 'adm-b').reason, 'does not fit: needs 16064 MiB, 7529 MiB free of 23593 (reserved 512)');
  });

  it('an exited workload holds nothing: its restart is admitted against what the others hold', () => {
    const a = vm('adm', 'a', 16_000);
    const b = vm('adm', 'b', 16_000);
    const r = run([a, b], { observed: { container: ok(), unikernel: ok(observedFor(a, { state: 'exited', exitCode: 1 }), observedFor(b)) }, instances: [record(a), record(b)] });
    assert.deepEqual(started(r), []);
    assert.match(row(r, 'adm-a').reason, /^does not fit: needs 16064 MiB, 7529 MiB free of 23593/);
  });

  it('the vCPU variant: online CPUs times the overcommit', () => {
    const r = run([vm('adm', 'a', 128, { vcpus: 6 }), vm('adm', 'b', 128, { vcpus: 4 })]);
    assert.deepEqual(started(r), ['start:adm-a']);
    assert.equal(row(r, 'adm-b').reason, 'does not fit: needs 4 vCPUs, 2 free of 8 (2 CPUs × overcommit 4)');
  });

  it('nothing is admitted that would exceed the capacity, whatever the mix', () => {
    const specs = [900, 5000, 12_000, 3000, 7000, 16_000, 200, 4000].map((m, i) => vm(`s${i % 3}`, `c${i}`, m, { vcpus: 1 + (i % 3) }));
    const r = run(specs);
    const cap = capacityOf(HOST);
    const total = r.actions.reduce((t, a) => ('spec' in a ? { m: t.m + shareOf(a.spec, SETTINGS).memoryMib, v: t.v + shareOf(a.spec, SETTINGS).vcpus } : t), { m: 0, v: 0 });
    assert.ok(total.m <= cap.memoryMib && total.v <= cap.vcpus, JSON.stringify({ total, cap }));
    assert.equal(r.actions.length + r.notAdmitted.length, specs.length);
    assert.ok(r.notAdmitted.length > 0, 'the mix is larger than the node: something must be refused');
  });
});

describe('admission: order', () => {
  it('service first, then component, by code units: the same components win whatever order the registry lists them in', () => {
    const specs = [vm('b', 'a', 9000), vm('a-x', 'z', 9000), vm('a', 'z', 9000), vm('a', 'y', 9000)];
    const winners = new Set<string>();
    for (const order of [specs, [...specs].reverse(), [specs[2]!, specs[0]!, specs[3]!, specs[1]!]]) winners.add(started(run(order)).join(','));
    // 'a' < 'a-x' < 'b'; inside a: y < z. Two 9064 MiB fit in 23593, the third does not.
    assert.deepEqual([...winners], ['start:a-y,start:a-z']);
  });
});

describe('admission: replace and restart', () => {
  it('a replace counts the old workload\'s share as freed: a grown VM fits where a second one would not', () => {
    const old = vm('adm', 'a', 16_000);
    const grown = vm('adm', 'a', 20_000);
    const r = run([grown], { observed: { container: ok(), unikernel: ok(observedFor(grown, { specHash: specHash(old) })) }, instances: [record(old)] });
    assert.deepEqual(started(r), ['replace:adm-a']);
    assert.equal(r.resources?.memory.allocated_mib, 20_064);
  });

  it('a replace that does not fit even so keeps the old one counted, and is pending', () => {
    const old = vm('adm', 'a', 8000);
    const b = vm('adm', 'b', 8000);
    const grown = vm('adm', 'a', 16_000);
    const r = run([grown, b], { observed: { container: ok(), unikernel: ok(observedFor(grown, { specHash: specHash(old) }), observedFor(b)) }, instances: [record(old), record(b)] });
    assert.deepEqual(started(r), []);
    assert.equal(row(r, 'adm-a').reason, 'does not fit: needs 16064 MiB, 15529 MiB free of 23593 (reserved 512)');
    assert.equal(r.resources?.memory.allocated_mib, 2 * 8064);
  });
});

describe('admission: what a workload counts', () => {
  it('a VM: its memory plus qemu.overhead_mib, 1 vCPU unless it says; a VM without memory counts QEMU\'s 128 MiB', () => {
    assert.deepEqual(shareOf(vm('s', 'a', 1000), SETTINGS), { memoryMib: 1064, vcpus: 1 });
    assert.deepEqual(shareOf(vm('s', 'a', 1000, { vcpus: 3 }), { ...SETTINGS, qemuOverheadMib: 100 }), { memoryMib: 1100, vcpus: 3 });
    assert.deepEqual(shareOf({ runtime: 'unikernel' }, SETTINGS), { memoryMib: 192, vcpus: 1 });
  });

  it('a container: its memory, else host.default_container_memory_mib (0: not counted); vCPUs only when it sets them', () => {
    assert.deepEqual(shareOf(spec('s', 'c'), SETTINGS), { memoryMib: 0, vcpus: 0 });
    assert.deepEqual(shareOf(spec('s', 'c'), { ...SETTINGS, defaultContainerMemoryMib: 256 }), { memoryMib: 256, vcpus: 0 });
    assert.deepEqual(shareOf(spec('s', 'c', { memory: 64, vcpus: 2 }), SETTINGS), { memoryMib: 64, vcpus: 2 });
    // Many unlimited containers fit by default; with a default each one counts.
    const many = Array.from({ length: 30 }, (_, i) => spec('web', `c${String(i).padStart(2, '0')}`));
    assert.equal(run(many).actions.length, 30);
    const counted = run(many, { admission: { ...HOST, settings: { ...SETTINGS, defaultContainerMemoryMib: 1000 } } });
    assert.equal(counted.actions.length, 23);
    assert.equal(counted.notAdmitted[0]!.reason, 'does not fit: needs 1000 MiB, 593 MiB free of 23593 (reserved 512)');
  });

  it('a running workload counts the spec it was started from (the record), not the one now desired', () => {
    const old = vm('adm', 'a', 4000);
    const now = vm('adm', 'a', 20_000, { restart: 'never' });
    const o = observedFor(now, { specHash: specHash(old) });
    const r = run([now, vm('adm', 'b', 16_000)], { observed: { container: ok(), unikernel: ok(o) }, instances: [record(old)] });
    // the replace of a (20064, with its old 4064 freed) fits; then b does not
    assert.deepEqual(started(r), ['replace:adm-a']);
    assert.equal(row(r, 'adm-b').drift, 'pending');
  });

  it('without the host\'s capacity in the input, everything is admitted and no resources are reported', () => {
    const p = plan({ desired: desired([vm('adm', 'a', 16_000), vm('adm', 'b', 16_000)].map(validRow)), observed: { unikernel: ok() }, instances: [], now: NOW, stableAfterMs: 1 });
    assert.equal(p.actions.length, 2);
    assert.equal(p.resources, undefined);
    assert.deepEqual(p.notAdmitted, []);
  });
});

describe('admission: reading the host, and the settings', () => {
  it('parses MemTotal and the kernel\'s CPU lists', () => {
    assert.equal(parseMemTotal('MemTotal:       24684096 kB\nMemFree:  1 kB\n'), 24_105);
    assert.equal(parseMemTotal('nothing'), undefined);
    assert.equal(parseCpuList('0-1\n'), 2);
    assert.equal(parseCpuList('0-3,8,10-11'), 7);
    assert.equal(parseCpuList('x'), undefined);
  });

  it('builds the admission input from the settings, and none without a host to read', () => {
    const cfg = loadConfig({ configPath: undefined, env: {}, flags: {}, cwd: '/srv' });
    assert.deepEqual(admissionInput(cfg, { memTotalMib: 1000, onlineCpus: 3 }), { host: { memTotalMib: 1000, onlineCpus: 3 }, settings: SETTINGS });
    assert.equal(admissionInput(cfg, undefined), undefined);
  });

  const dir = mkdtempSync(join(tmpdir(), 'adm-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = (text: string): ValidationError => {
    const file = join(dir, 'agent.toml');
    writeFileSync(file, text);
    try {
      loadConfig({ configPath: file, env: {}, flags: {}, cwd: dir });
    } catch (err) {
      if (err instanceof ValidationError) return err;
      throw err;
    }
    assert.fail(`accepted: ${text}`);
  };

  it('bad values are named with their rule', () => {
    const e = bad('[host]\nreserved_memory_mib = -1\ncpu_overcommit = 0\ndefault_container_memory_mib = 1.5\n[qemu]\noverhead_mib = 5000\n');
    const issues = Object.fromEntries(e.issues.map((i) => [i.field, i.rule]));
    assert.equal(issues['host.reserved_memory_mib'], 'must be at least 0');
    assert.equal(issues['host.cpu_overcommit'], 'must be at least 1');
    assert.equal(issues['host.default_container_memory_mib'], 'must be a whole number of MiB');
    assert.equal(issues['qemu.overhead_mib'], 'must be at most 4096');
    assert.match(bad('[host]\nreserved = 1\n').issues[0]!.rule, /is not a known field/);
  });
});

describe('admission: what status, plan and the metrics show', () => {
  const r = run([vm('adm', 'a', 16_000), vm('adm', 'b', 16_000)]);

  it('plan lists the starts not admitted, with why, and --check counts them', () => {
    const doc = planDocument(r);
    assert.deepEqual(doc.not_admitted.map((n) => [n.type, n.workload, n.not_admitted]), [['start', 'adm-b', 'does not fit: needs 16064 MiB, 7529 MiB free of 23593 (reserved 512)']]);
    const text = formatPlan(doc);
    assert.match(text, /start adm\/b not admitted: does not fit: needs 16064 MiB/);
    assert.match(text, /1 action\(s\), 1 not admitted/);
    assert.equal(planPending({ ...doc, actions: [] }), true);
    // nothing but a refusal is not "nothing to do"
    assert.doesNotMatch(formatPlan({ ...doc, actions: [] }), /nothing to do/);
  });

  it('the status header line', () => {
    assert.equal(resourcesLine(r.resources!), 'memory 16064/23593 MiB allocated (total 24105, reserved 512); vcpus 1/8 (2 CPUs × overcommit 4)');
  });

  it('mcp_agent_memory_bytes and mcp_agent_vcpus by state', async () => {
    const m = new AgentMetrics();
    m.passDone(passReport({ ...r, listings: {}, leases: [] }, 0.01, NOW));
    const text = await m.text();
    assert.match(text, /^mcp_agent_memory_bytes\{state="capacity"\} 24739053568$/m);
    assert.match(text, /^mcp_agent_memory_bytes\{state="allocated"\} 16844324864$/m);
    assert.match(text, /^mcp_agent_vcpus\{state="capacity"\} 8$/m);
    assert.match(text, /^mcp_agent_vcpus\{state="allocated"\} 1$/m);
  });
});
