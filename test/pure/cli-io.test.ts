// The pure parts of the CLI's I/O conventions: duration/time/count parsing for --since, --tail and
// --wait-timeout; completion tables read from a commander tree; the progress renderer on a TTY
// and off one; the console tail offset; apply --wait's reading of a status report.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Argument, Command, Option } from 'commander';
import type { StatusReport, StatusRow } from '../../src/agent/status.js';
import { rowText, waitRows } from '../../src/cli/apply-wait.js';
import { BootProgressView } from '../../src/cli/boot-progress.js';
import { bashScript, completionTree, zshScript } from '../../src/cli/completion.js';
import { LiveLines } from '../../src/cli/live-lines.js';
import { packageVersion } from '../../src/cli/version.js';
import { parseCount, parseDuration, parseRfc3339, parseSince } from '../../src/duration.js';
import { lastLinesOffset } from '../../src/runtime/qemu/process.js';

describe('parseDuration', () => {
  it('reads a number with a unit, and Go-style compounds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration(' 0s '), 0);
  });
  it('refuses a bare number (podman reads one as a Unix time), other units, signs, text', () => {
    for (const bad of ['10', '', 's', '-5m', '5 m', '5min', '1y', 'ms5', '1h30', 'abc', '1e3s']) assert.equal(parseDuration(bad), undefined, bad);
  });
});

describe('parseSince and parseRfc3339', () => {
  const now = Date.parse('2026-11-29T12:00:00Z');
  it('a duration counts back from now', () => {
    assert.equal(parseSince('5m', now), now - 300_000);
    assert.equal(parseSince('0s', now), now);
  });
  it('an RFC 3339 time with its offset', () => {
    assert.equal(parseSince('2026-11-29T10:00:00Z', now), Date.parse('2026-11-29T10:00:00Z'));
    assert.equal(parseRfc3339('2026-11-29T10:00:00.250+01:00'), Date.parse('2026-11-29T09:00:00.250Z'));
    assert.equal(parseRfc3339('2026-11-29 10:00:00Z'), Date.parse('2026-11-29T10:00:00Z'));
  });
  it('refuses a time without an offset (ambiguous), a date alone, an impossible date', () => {
    for (const bad of ['2026-11-29T10:00:00', '2026-11-29', 'yesterday', '2026-13-45T99:00:00Z', '1732870800']) assert.equal(parseSince(bad, now), undefined, bad);
  });
});

describe('parseCount', () => {
  it('whole numbers from 0', () => {
    assert.equal(parseCount('0'), 0);
    assert.equal(parseCount('20'), 20);
    for (const bad of ['-1', '1.5', '', 'ten', '1e3', '99999999999999999999']) assert.equal(parseCount(bad), undefined, bad);
  });
});

/** A program shaped like the agent's: global options, a nested group, choices, an argument with choices. */
function sample(): Command {
  const p = new Command('tool').option('--db <path>', 'db').addOption(new Option('--log-level <level>', 'lvl').choices(['info', 'warn'])).version('1.2.3', '-V, --version');
  p.command('status').option('--json', 'json').option('-n, --limit <n>', 'n');
  const g = p.command('fleet');
  g.command('apply').requiredOption('-f, --file <path>', 'file').option('--wait', 'wait');
  p.command('completion').addArgument(new Argument('<shell>').choices(['bash', 'zsh']));
  p.command('secret', { hidden: true });
  return p;
}

describe('completion tree', () => {
  const tree = completionTree(sample());
  const node = (path: string) => tree.find((n) => n.path === path)!;
  it('lists every visible command by its path, hidden ones left out', () => {
    assert.deepEqual(tree.map((n) => n.path), ['tool', 'tool status', 'tool fleet', 'tool fleet apply', 'tool completion']);
    assert.deepEqual(node('tool').subcommands, ['status', 'fleet', 'completion', 'help']);
    assert.deepEqual(node('tool fleet').subcommands, ['apply', 'help']);
  });
  it('gives each command its own flags, help, and the root\'s global ones (not --version)', () => {
    const opts = node('tool status').options;
    for (const f of ['--json', '-n', '--limit', '-h', '--help', '--db', '--log-level']) assert.ok(opts.includes(f), `${f} in ${opts.join(' ')}`);
    assert.ok(!opts.includes('--version'));
    assert.ok(node('tool').options.includes('--version'));
  });
  it('knows which flags take a value, with their choices, and an argument\'s choices', () => {
    assert.deepEqual(node('tool fleet apply').values.get('-f'), []);
    assert.deepEqual(node('tool fleet apply').values.get('--log-level'), ['info', 'warn']);
    assert.equal(node('tool fleet apply').values.has('--wait'), false);
    assert.deepEqual(node('tool completion').argChoices, ['bash', 'zsh']);
  });
  it('writes both scripts from the tree, quoting every key', () => {
    const bash = bashScript(tree);
    assert.match(bash, /\['tool fleet'\]='apply help'/);
    assert.match(bash, /\['tool fleet apply\|-f'\]=''/);
    assert.match(bash, /complete -o default -F _tool_complete tool/);
    const zsh = zshScript(tree);
    assert.match(zsh, /^#compdef tool/);
    assert.match(zsh, /'tool fleet' 'apply help'/);
    assert.match(zsh, /compdef _tool tool/);
  });
});

/** A stream that records what was written, optionally claiming to be a terminal. */
function sink(tty: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  let out = '';
  const w = new Writable({ write: (c, _e, done) => ((out += String(c)), done()) }) as Writable & { isTTY: boolean; columns: number; text: () => string };
  w.isTTY = tty;
  w.columns = 60;
  w.text = () => out;
  return w;
}

describe('LiveLines', () => {
  it('off a terminal: one plain line per change, none for a repeat', () => {
    const s = sink(false);
    const l = new LiveLines(s, [['a', 'waiting']]);
    l.set('a', 'waiting');
    l.set('a', '1/2 in sync');
    l.set('a', '1/2 in sync');
    l.set('b', 'in sync');
    l.above('a log line\n');
    l.finish();
    assert.equal(s.text(), 'a: 1/2 in sync\nb: in sync\na log line\n');
  });
  it('on a terminal: the block is redrawn in place, other text goes above it', () => {
    const s = sink(true);
    const l = new LiveLines(s);
    l.set('a', 'one');
    l.set('b', 'two');
    l.above('log\n');
    l.finish();
    assert.equal(s.text(), 'a: one' + '\r\x1b[Ja: one\nb: two' + '\r\x1b[1A\x1b[Jlog\na: one\nb: two' + '\n');
  });
  it('cuts lines to the terminal width', () => {
    const s = sink(true);
    new LiveLines(s).set('k', 'x'.repeat(200));
    assert.equal(s.text().length, 59);
  });
});

describe('BootProgressView', () => {
  const key = { service: 'demo', component: 'vm' };
  it('off a terminal: a line when the wait begins and one when it ends, no ticks', () => {
    const s = sink(false);
    let now = 1000;
    const v = new BootProgressView(new LiveLines(s), () => now);
    v.onBoot({ key, workload: 'demo-vm', phase: 'waiting', since: 1000 });
    now = 4400;
    v.onBoot({ key, workload: 'demo-vm', phase: 'ready', since: 1000 });
    v.stop();
    assert.equal(s.text(), 'demo/vm: waiting for SSH\ndemo/vm: SSH ready after 3.4 s\n');
  });
  it('on a terminal: the elapsed time in the line, a failure said as such', () => {
    const s = sink(true);
    const v = new BootProgressView(new LiveLines(s), () => 2100);
    v.onBoot({ key, workload: 'demo-vm', phase: 'waiting', since: 0 });
    v.onBoot({ key, workload: 'demo-vm', phase: 'failed', since: 0 });
    v.stop();
    assert.match(s.text(), /^demo\/vm: waiting for SSH, 2\.1 s/);
    assert.match(s.text(), /demo\/vm: boot failed after 2\.1 s\n$/);
  });
});

describe('lastLinesOffset (a VM console\'s --tail)', () => {
  it('finds where the last N lines begin, like tail -n', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cvb-tail-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, 'console.log');
    const text = Array.from({ length: 30_000 }, (_, i) => `line${i + 1}\r\n`).join(''); // > one 64 KiB block
    writeFileSync(f, text);
    const tail = (n: number): string => text.slice(lastLinesOffset(f, n));
    assert.equal(tail(2), 'line29999\r\nline30000\r\n');
    assert.equal(tail(0), '');
    assert.equal(tail(30_000), text);
    assert.equal(tail(99_999), text);
    assert.equal(tail(20_000).split('\n')[0], 'line10001\r');
    writeFileSync(f, 'a\nb\nno newline');
    assert.equal('a\nb\nno newline'.slice(lastLinesOffset(f, 2)), 'b\nno newline');
    writeFileSync(f, '');
    assert.equal(lastLinesOffset(f, 3), 0);
  });
});

describe('apply --wait reading a status report', () => {
  const row = (service: string, component: string, drift: StatusRow['drift'], observed = 'running', reason = ''): StatusRow => ({
    service, component, workload: `${service}-${component}`, runtime: 'container', desired: 'running', observed, drift, reason,
    next_action: null, backoff_until: null, address: null, network: null, handle: null, restarts: 0, last_event: null, observed_at: null, observed_age_seconds: null, last_error: null, started_at: null,
    health: null, health_output: null, health_since: null,
  });
  const report = (components: StatusRow[]): StatusReport => ({
    registry: { path: 'x', writable: true } as StatusReport['registry'],
    agent: { running: true, pid: 1, last_pass_at: null, once_in_progress: false },
    node: { drained: false, drained_since: null },
    runtimes: {},
    source: null,
    resources: null,
    summary: {},
    components,
  });
  it('waits for the applied services only, and for every workload of a pruned one to go', () => {
    const r = report([row('a', 'x', 'in-sync'), row('a', 'y', 'missing', 'absent', 'not running'), row('b', 'z', 'missing'), row('old', 'w', 'orphan')]);
    const { rows, late } = waitRows(r, { services: ['a'], pruned: ['old'] });
    assert.deepEqual(rows.map((c) => `${c.service}/${c.component}`), ['a/x', 'a/y', 'old/w']);
    assert.deepEqual(late.map((c) => `${c.service}/${c.component}`), ['a/y', 'old/w']);
    assert.equal(rowText(late[0]!), 'missing (not running)');
    assert.equal(rowText(rows[0]!), 'in sync');
    assert.deepEqual(waitRows(report([row('a', 'x', 'in-sync')]), { services: ['a'], pruned: ['old'] }).late, []);
  });
});

describe('packageVersion', () => {
  it('walks up to the package.json named mcp-node-agent, from src/ as from dist/', () => {
    assert.match(packageVersion() ?? '', /^\d+\.\d+\.\d+/);
    assert.equal(packageVersion('/nonexistent/a/b/c.js'), undefined);
  });
});
