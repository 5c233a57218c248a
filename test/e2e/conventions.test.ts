// The operator conventions of `status`, `plan` and `apply` on the real CLI, real SQLite and real
// podman: the status filter and its errors, --check exit codes, actions held by a backoff, an
// unusable runtime, spec changes named by field, the 120-column table, the last error kept after
// a backoff, and what apply --dry-run and an unchanged apply say.
import { strict as assert } from 'node:assert';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { containerService, row, SLEEP, TestNode, waitFor, type StatusJson } from '../helpers/agent.js';

interface PlanJson {
  actions: Array<{ type: string; service: string | null; component: string | null; reason: string }>;
  held: Array<{ type: string; service: string | null; component: string | null; due_at: string; failures: number; last_error: string | null }>;
  unknown_runtimes: Array<{ runtime: string; error: string; components: string[] }>;
}

/** A settings file in the node's dir; the CLI reads it through AGENT_CONFIG. */
function config(node: TestNode, name: string, body: string): Record<string, string> {
  const file = join(node.dir, name);
  writeFileSync(file, `db = "agent.db"\n${body}`);
  return { AGENT_CONFIG: file };
}

const lines = (s: string): string[] => s.split('\n');
const longest = (s: string): number => Math.max(...lines(s).map((l) => l.length));

describe('operator conventions, end to end', () => {
  it('status filters by service or component, --check exits 1 only on drift, and a memory change is named in status and plan', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('cva');
    const other = TestNode.serviceName('cva');
    const manifest = (memory: number): string => containerService(svc, { web: SLEEP, db: SLEEP }, { web: `memory = ${memory}` });
    await node.apply(manifest(64));
    await node.apply(containerService(other, { api: SLEEP }), 'other.toml');
    await node.ok(['run', '--once']);

    // in sync: both --check exit 0
    assert.equal((await node.cli(['status', '--check'])).exitCode, 0);
    assert.equal((await node.cli(['plan', '--check'])).exitCode, 0);

    // the filter, in JSON and in the table, with the summary of what it kept
    const onlySvc = JSON.parse(await node.ok(['status', svc, '--json'])) as StatusJson;
    assert.deepEqual(onlySvc.components.map((c) => `${c.service}/${c.component}`).sort(), [`${svc}/db`, `${svc}/web`]);
    assert.deepEqual(onlySvc.summary, { 'in-sync': 2 });
    const oneComp = JSON.parse(await node.ok(['status', `${svc}/web`, '--json'])) as StatusJson;
    assert.deepEqual(oneComp.components.map((c) => c.component), ['web']);
    assert.deepEqual(oneComp.summary, { 'in-sync': 1 });
    const table = await node.ok(['status', `${svc}/web`]);
    assert.match(table, new RegExp(`^${svc}/web `, 'm'));
    assert.doesNotMatch(table, new RegExp(`${svc}/db|${other}/api`));
    assert.match(table, /1 rows: 1 in-sync/);

    // errors: a bad reference (exit 2, naming the argument), nothing matching (exit 4, naming it)
    const bad = await node.cli(['status', 'Not/A/Ref']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /SERVICE\[\/COMPONENT\]: must look like web or web\/api.*'Not\/A\/Ref'/);
    const none = await node.cli(['status', 'cvanosuch']);
    assert.equal(none.exitCode, 4);
    assert.match(none.stderr, /no service cvanosuch in the registry/);
    const noComp = await node.cli(['status', `${svc}/nosuch`, '--json']);
    assert.equal(noComp.exitCode, 4);
    assert.match(noComp.stderr, new RegExp(`no component ${svc}/nosuch in the registry.*has: db, web`));
    assert.equal(noComp.stdout, '');

    // memory 64 → 96: named in status and plan; --check exits 1; a filter on the other service still 0
    await node.apply(manifest(96));
    const st = await node.status();
    assert.equal(row(st, svc, 'web').drift, 'spec-changed');
    assert.equal(row(st, svc, 'web').reason, 'spec changed: memory 64 → 96');
    assert.match(await node.ok(['status']), /spec changed: memory 64 → 96/);
    const planText = await node.ok(['plan']);
    assert.match(planText, new RegExp(`replace +${svc}/web +container +spec changed: memory 64 → 96`));
    const planJson = JSON.parse(await node.ok(['plan', '--json'])) as PlanJson;
    assert.deepEqual(planJson.actions.map((a) => [a.type, a.component, a.reason]), [['replace', 'web', 'spec changed: memory 64 → 96']]);
    assert.equal((await node.cli(['status', '--check'])).exitCode, 1);
    assert.equal((await node.cli(['status', svc, '--check'])).exitCode, 1);
    assert.equal((await node.cli(['status', other, '--check'])).exitCode, 0, '--check looks only at what the filter kept');
    const planCheck = await node.cli(['plan', '--check']);
    assert.equal(planCheck.exitCode, 1);
    assert.match(planCheck.stdout, /replace/, '--check still prints the plan');

    // after the replace, the next change is named from the spec the new container was started with
    await node.ok(['run', '--once']);
    assert.equal((await node.cli(['plan', '--check'])).exitCode, 0);
    await node.apply(manifest(128));
    assert.equal(row(await node.status(), svc, 'web').reason, 'spec changed: memory 96 → 128');
  });

  it('a failed start: plan shows the held action with its due time, --check exits 1; the table fits 120 columns, --wide does not', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('cva');
    // A backoff far longer than the test: the action is held whatever the machine's speed.
    const env = config(node, 'agent.toml', '[backoff]\nbase_ms = 600000\nmax_ms = 600000\n');
    await node.apply(`name = "${svc}"\nruntime = "container"\n\n[[components]]\nname = "web"\nimage = "localhost/nope:1"\ncmd = ["sleep", "9"]\n`);
    assert.equal((await node.cli(['run', '--once'], { env })).exitCode, 1);

    const planText = await node.ok(['plan'], { env });
    assert.match(planText, new RegExp(`^start ${svc}/web held by backoff until \\d\\d:\\d\\d:\\d\\d \\(in (\\d+m )?\\d+s\\): .*localhost/nope:1.*$`, 'm'));
    assert.doesNotMatch(planText, /nothing to do/);
    const p = JSON.parse(await node.ok(['plan', '--json'], { env })) as PlanJson;
    assert.deepEqual(p.actions, []);
    assert.equal(p.held.length, 1);
    assert.equal(p.held[0]!.type, 'start');
    assert.equal(p.held[0]!.component, 'web');
    assert.equal(p.held[0]!.failures, 1);
    assert.match(p.held[0]!.last_error ?? '', /localhost\/nope:1/);
    assert.ok(Date.parse(p.held[0]!.due_at) > Date.now(), `due_at in the future: ${p.held[0]!.due_at}`);
    assert.equal((await node.cli(['plan', '--check'], { env })).exitCode, 1);
    assert.equal((await node.cli(['status', '--check'], { env })).exitCode, 1);

    const st = await node.status();
    assert.match(row(st, svc, 'web').last_error ?? '', /localhost\/nope:1/);
    const narrow = await node.ok(['status'], { env });
    assert.ok(longest(narrow) <= 120, `default table within 120 columns, got ${longest(narrow)}:\n${narrow}`);
    assert.match(narrow, new RegExp(`^${svc}/web .*retry in .*last error: .*image not known`, 'm'));
    const wide = await node.ok(['status', '--wide'], { env });
    assert.ok(longest(wide) > 120, `--wide shows every column in full:\n${wide}`);
    assert.match(wide, /LAST EVENT/);
    assert.match(wide, /backing off until/);
  });

  it('the last error stays in status after the backoff ends, until the component is in sync', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('cva');
    const env = config(node, 'agent.toml', '[backoff]\nbase_ms = 500\nmax_ms = 500\n');
    const file = (image: string): string => `name = "${svc}"\nruntime = "container"\n\n[[components]]\nname = "web"\nimage = "${image}"\ncmd = ${JSON.stringify(SLEEP)}\n`;
    await node.apply(file('localhost/nope:1'));
    assert.equal((await node.cli(['run', '--once'], { env })).exitCode, 1);
    const after = await waitFor('the backoff to end', async () => {
      const s = await node.status();
      return row(s, svc, 'web').backoff_until === null ? s : undefined;
    });
    const r = row(after, svc, 'web');
    assert.match(r.next_action ?? '', /^start/);
    assert.match(r.last_error ?? '', /localhost\/nope:1/);
    assert.match(await node.ok(['status', svc]), /last error: .*image not known/);

    await node.apply(file('localhost/agent-busybox:latest'));
    await node.ok(['run', '--once'], { env });
    const fixed = row(await node.status(), svc, 'web');
    assert.equal(fixed.drift, 'in-sync');
    assert.equal(fixed.last_error, null);
  });

  it('podman unusable: plan says the runtime cannot list and its components are left alone; --check exits 1', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const svc = TestNode.serviceName('cva');
    await node.apply(containerService(svc, { web: SLEEP }));
    await node.ok(['run', '--once']);
    const broken = join(node.dir, 'bin');
    mkdirSync(broken);
    writeFileSync(join(broken, 'podman'), '#!/bin/sh\necho "podman: unusable on purpose" >&2\nexit 1\n');
    chmodSync(join(broken, 'podman'), 0o755);
    const env = config(node, 'broken.toml', `[podman]\nbinary = "${join(broken, 'podman')}"\napi = "off"\n`);

    const text = await node.ok(['plan'], { env });
    assert.match(text, new RegExp(`the container runtime cannot list \\(.*unusable on purpose.*\\): its components are unknown and left alone: ${svc}/web`));
    assert.doesNotMatch(text, /nothing to do/);
    const p = JSON.parse(await node.ok(['plan', '--json'], { env })) as PlanJson;
    assert.deepEqual(p.unknown_runtimes.map((u) => [u.runtime, u.components]), [['container', [`${svc}/web`]]]);
    assert.equal((await node.cli(['plan', '--check'], { env })).exitCode, 1);
    assert.equal((await node.cli(['status', '--check'], { env })).exitCode, 1);
    assert.equal((await node.cli(['plan', '--check'])).exitCode, 0, 'with podman back, nothing is pending');
  });

  it('apply --dry-run says what would be created, updated (old → new) and pruned, and writes nothing; an unchanged service says unchanged', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const a = TestNode.serviceName('cva');
    const b = TestNode.serviceName('cva');
    const dir = join(node.dir, 'set');
    mkdirSync(dir);
    const write = (name: string, memory: number, env = ''): void => writeFileSync(join(dir, `${name}.toml`), containerService(name, { web: SLEEP }, { web: `memory = ${memory}${env}` }));
    write(a, 64);
    write(b, 64);
    assert.match(await node.ok(['apply', '-f', dir]), new RegExp(`service ${a} created \\(1 component\\)`));
    assert.match(await node.ok(['apply', '-f', dir]), new RegExp(`^service ${a} unchanged$`, 'm'));

    const c = TestNode.serviceName('cva');
    write(a, 96, '\nenv = { FOO = "1" }');
    write(c, 64);
    rmSync(join(dir, `${b}.toml`));
    const before = node.query<{ service: string; memory_mib: number | null }>('SELECT service, memory_mib FROM components ORDER BY service');
    const dry = await node.ok(['apply', '--prune', '--dry-run', '-f', dir]);
    assert.match(dry, /^dry run: nothing written to /m);
    assert.match(dry, new RegExp(`^service ${a} would be updated \\(1 component\\): components\\[web\\]\\.env\\.FOO added; components\\[web\\]\\.memory 64 → 96$`, 'm'));
    assert.match(dry, new RegExp(`^service ${c} would be created \\(1 component\\)$`, 'm'));
    assert.match(dry, new RegExp(`^service ${b} would be deleted \\(pruned\\)$`, 'm'));
    assert.deepEqual(node.query('SELECT service, memory_mib FROM components ORDER BY service'), before, 'the dry run wrote nothing');

    const real = await node.ok(['apply', '--prune', '-f', dir]);
    assert.match(real, new RegExp(`^service ${a} updated \\(1 component\\): components\\[web\\]\\.env\\.FOO added; components\\[web\\]\\.memory 64 → 96$`, 'm'));
    assert.match(real, new RegExp(`^service ${b} deleted \\(pruned\\)$`, 'm'));
    const again = await node.ok(['apply', '-f', dir]);
    assert.deepEqual(lines(again.trim()).sort(), [`service ${a} unchanged`, `service ${c} unchanged`].sort());
  });

  it('apply takes -f more than once as one set; a service in two of them is refused naming both, and nothing is written', async (t) => {
    const node = new TestNode();
    t.after(() => node.cleanup());
    const a = TestNode.serviceName('cvf');
    const b = TestNode.serviceName('cvf');
    const fa = join(node.dir, 'a.toml');
    const fb = join(node.dir, 'b.toml');
    writeFileSync(fa, containerService(a, { web: SLEEP }));
    writeFileSync(fb, containerService(b, { web: SLEEP }));
    const both = await node.ok(['apply', '-f', fa, '-f', fb]);
    assert.match(both, new RegExp(`^service ${a} created \\(1 component\\)$`, 'm'));
    assert.match(both, new RegExp(`^service ${b} created \\(1 component\\)$`, 'm'));

    const before = node.query('SELECT service, name, memory_mib FROM components ORDER BY service');
    writeFileSync(fb, containerService(a, { web: SLEEP }, { web: 'memory = 96' }));
    const twice = await node.cli(['apply', '-f', fa, '-f', fb]);
    assert.equal(twice.exitCode, 2);
    assert.match(twice.stderr, new RegExp(`--file: service ${a} is in both ${fa} and ${fb}: a service may be given once`));
    assert.deepEqual(node.query('SELECT service, name, memory_mib FROM components ORDER BY service'), before, 'nothing written');

    const prune = await node.cli(['apply', '--prune', '-f', node.dir, '-f', fa]);
    assert.equal(prune.exitCode, 2);
    assert.match(prune.stderr, new RegExp(`--file: must be a directory with --prune.*; ${fa} is not`));
  });
});
