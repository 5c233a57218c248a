// QMP client: the line buffer and parser (pure), the protocol over a fake stream, and the real
// thing against QEMU (TCG, `-S`, no guest, no network). Each QEMU test starts its own QEMU and
// kills it (by the pid from its pidfile) and removes its temp dir in t.after, even on failure.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { z } from 'zod';
import { AgentError } from '../../src/errors.js';
import { processLive } from '../../src/runtime/qemu/state.js';
import { QmpClient, type QmpCloseInfo } from '../../src/runtime/qmp/client.js';
import { QmpError } from '../../src/runtime/qmp/errors.js';
import { LineBuffer, parseQmpMessage, type QmpEvent } from '../../src/runtime/qmp/wire.js';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Pure: line buffer and message parser

describe('LineBuffer', () => {
  it('keeps a partial line until its newline arrives', () => {
    const b = new LineBuffer();
    assert.deepEqual(b.push('{"a":'), []);
    assert.equal(b.rest, '{"a":');
    assert.deepEqual(b.push('1}'), []);
    assert.deepEqual(b.push('\r\n'), ['{"a":1}']);
    assert.equal(b.rest, '');
  });

  it('returns every line of a chunk holding several objects, and keeps the tail', () => {
    const b = new LineBuffer();
    assert.deepEqual(b.push('{"a":1}\r\n{"b":2}\n\r\n{"c":'), ['{"a":1}', '{"b":2}']);
    assert.deepEqual(b.push('3}\n'), ['{"c":3}']);
  });

  it('decodes UTF-8 split across chunks', () => {
    const b = new LineBuffer();
    const bytes = Buffer.from('{"desc":"caf\u00e9 \u2713"}\n', 'utf8');
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...b.push(bytes.subarray(i, i + 1)));
    assert.deepEqual(out, ['{"desc":"caf\u00e9 \u2713"}']);
  });
});

describe('parseQmpMessage', () => {
  it('recognises greeting, return, error and event', () => {
    const g = parseQmpMessage(
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "x"}, "capabilities": ["oob"]}}',
    );
    assert.equal(g.type, 'greeting');
    assert.deepEqual(parseQmpMessage('{"return": {}, "id": "agent-1"}'), { type: 'return', id: 'agent-1', value: {} });
    assert.deepEqual(parseQmpMessage('{"return": [1,2]}'), { type: 'return', id: undefined, value: [1, 2] });
    assert.deepEqual(
      parseQmpMessage('{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}'),
      { type: 'error', id: 7, errorClass: 'CommandNotFound', desc: 'The command x has not been found' },
    );
    assert.deepEqual(parseQmpMessage('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}'), {
      type: 'event',
      event: { event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } },
    });
    const shutdown = parseQmpMessage(
      '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}',
    );
    assert.ok(shutdown.type === 'event');
    assert.deepEqual(shutdown.event.data, { guest: false, reason: 'host-qmp-quit' });
  });

  it('rejects what is not QMP', () => {
    for (const bad of ['not json', '[1]', '42', '{"hello": 1}', '{"error": "x"}', '{"event": "STOP"}', '{"QMP": {}}']) {
      assert.throws(() => parseQmpMessage(bad), Error, bad);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Protocol over a fake stream

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}\r\n';

const CommandSchema = z.object({ execute: z.string(), id: z.string(), arguments: z.record(z.string(), z.unknown()).optional() });
type Command = z.infer<typeof CommandSchema>;

/** A stream that plays QEMU: sends the greeting (unless told not to) and hands each command to `respond`. */
function fakeQemu(opts: { greeting?: boolean; respond?: (cmd: Command, send: (s: string | Buffer) => void) => void } = {}): {
  stream: Duplex;
  received: Command[];
} {
  const lines = new LineBuffer();
  const received: Command[] = [];
  const stream: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      for (const l of lines.push(chunk)) {
        const cmd = CommandSchema.parse(JSON.parse(l));
        received.push(cmd);
        const send = (s: string | Buffer): void => {
          stream.push(s);
        };
        if (cmd.execute === 'qmp_capabilities') send(`{"return": {}, "id": ${JSON.stringify(cmd.id)}}\r\n`);
        else opts.respond?.(cmd, send);
      }
      cb();
    },
  });
  if (opts.greeting !== false) setImmediate(() => stream.push(GREETING));
  return { stream, received };
}

const ev = (name: string, data?: object): string =>
  JSON.stringify({ timestamp: { seconds: 1, microseconds: 0 }, event: name, ...(data ? { data } : {}) }) + '\r\n';

describe('QmpClient over a fake stream', () => {
  it('negotiates capabilities, matches out-of-order replies by id, delivers interleaved events', async () => {
    const held: Command[] = [];
    const { stream, received } = fakeQemu({
      respond: (cmd, send) => {
        held.push(cmd);
        if (held.length < 3) return;
        // Answer in reverse order, events in between, all in one chunk.
        send(held.reverse().map((c) => `{"return": {"echo": "${c.execute}"}, "id": "${c.id}"}\r\n${ev('RESUME')}`).join(''));
      },
    });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    assert.equal(received[0]?.execute, 'qmp_capabilities');
    assert.equal(client.greeting?.version?.package, 'fake');
    const events: QmpEvent[] = [];
    client.onEvent((e) => events.push(e));
    const results = await Promise.all(['a', 'b', 'c'].map((c) => client.execute(c)));
    assert.deepEqual(results, [{ echo: 'a' }, { echo: 'b' }, { echo: 'c' }]);
    assert.equal(new Set(received.map((c) => c.id)).size, received.length, 'ids are unique');
    assert.deepEqual(
      events.map((e) => e.event),
      ['RESUME', 'RESUME', 'RESUME'],
    );
    await client.close();
  });

  it('reassembles replies that arrive one byte at a time', async () => {
    const { stream } = fakeQemu({
      respond: (cmd, send) => {
        const bytes = Buffer.from(`${ev('STOP')}{"id": "${cmd.id}", "error": {"class": "GenericError", "desc": "caf\u00e9"}}\r\n`);
        for (let i = 0; i < bytes.length; i++) send(bytes.subarray(i, i + 1));
      },
    });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    const stop = client.waitForEvent('STOP', { timeoutMs: 1000 });
    await assert.rejects(client.execute('x'), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.kind, 'command-error');
      assert.equal(e.errorClass, 'GenericError');
      assert.equal(e.desc, 'caf\u00e9');
      return true;
    });
    await stop;
    await client.close();
  });

  it('validates replies against a schema', async () => {
    const { stream } = fakeQemu({ respond: (cmd, send) => send(`{"return": {"running": "yes"}, "id": "${cmd.id}"}\n`) });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    await assert.rejects(client.queryStatus(), (e: unknown) => e instanceof QmpError && e.kind === 'protocol');
    await client.close();
  });

  it('rejects pending commands when the stream closes, and reports an unexpected close', async () => {
    const { stream } = fakeQemu({ respond: () => setImmediate(() => stream.destroy()) });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    const closes: QmpCloseInfo[] = [];
    client.onClose((i) => closes.push(i));
    await assert.rejects(client.execute('x'), (e: unknown) => e instanceof QmpError && e.kind === 'closed' && e.command === 'x');
    assert.deepEqual(closes.map((c) => [c.reason, c.expected]), [['remote', false]]);
    await assert.rejects(client.execute('y'), (e: unknown) => e instanceof QmpError && e.kind === 'closed');
    await client.close(); // idempotent on a closed client
    assert.equal(closes.length, 1);
  });

  it('times out a command without a reply, and drops the late reply', async () => {
    let late: (() => void) | undefined;
    const { stream } = fakeQemu({
      respond: (cmd, send) => {
        if (cmd.execute === 'slow') late = () => send(`{"return": "late", "id": "${cmd.id}"}\n`);
        else send(`{"return": "fast", "id": "${cmd.id}"}\n`);
      },
    });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    await assert.rejects(client.execute('slow', undefined, { timeoutMs: 50 }), (e: unknown) => e instanceof QmpError && e.kind === 'timeout');
    late?.();
    assert.equal(await client.execute('quick'), 'fast');
    await client.close();
  });

  it('close() is idempotent and reports an expected close once', async () => {
    const { stream } = fakeQemu();
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    const closes: QmpCloseInfo[] = [];
    client.onClose((i) => closes.push(i));
    await Promise.all([client.close(), client.close()]);
    await client.close();
    assert.deepEqual(closes.map((c) => [c.reason, c.expected]), [['client', true]]);
    assert.equal(client.isOpen, false);
  });

  it('reports a greeting timeout when no greeting comes', async () => {
    const { stream } = fakeQemu({ greeting: false });
    await assert.rejects(QmpClient.handshake(stream, 'fake', 100), (e: unknown) => {
      assert.ok(e instanceof QmpError && e instanceof AgentError);
      assert.equal(e.kind, 'greeting-timeout');
      assert.match(e.message, /one client at a time/);
      return true;
    });
    assert.ok(stream.destroyed);
  });

  it('emits protocolError for garbage and keeps going', async () => {
    const { stream } = fakeQemu({ respond: (cmd, send) => send(`garbage\n{"return": 1, "id": "${cmd.id}"}\n`) });
    const client = await QmpClient.handshake(stream, 'fake', 1000);
    const errs: QmpError[] = [];
    client.on('protocolError', (e) => errs.push(e));
    assert.equal(await client.execute('x'), 1);
    assert.equal(errs.length, 1);
    assert.equal(errs[0]?.kind, 'protocol');
    await client.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Real QEMU

interface Vm {
  dir: string;
  sock: string;
  pid: number;
}

/** True while any thread of `pid` is live: the agent's own rule (a zombie leader is not gone). */
const alive = processLive;

/** Our QEMU: alive and its argv names our temp dir (guards against pid reuse). */
function isOurQemu(pid: number, dir: string): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** Starts a paused (`-S`) QEMU with a QMP socket in a fresh temp dir; t.after kills it and removes the dir. */
async function startQemu(t: TestContext): Promise<Vm> {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
  const pidfile = join(dir, 'qemu.pid');
  const sock = join(dir, 'qmp.sock');
  let pid: number | undefined;
  t.after(() => {
    if (pid === undefined && existsSync(pidfile)) pid = Number(readFileSync(pidfile, 'utf8').trim());
    if (pid !== undefined && isOurQemu(pid, dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await execFileP(
    'qemu-system-x86_64',
    // prettier-ignore
    ['-accel', 'tcg', '-M', 'q35', '-nodefaults', '-display', 'none', '-m', '32', '-S',
     '-daemonize', '-pidfile', pidfile, '-qmp', `unix:${sock},server=on,wait=off`,
     '-name', 'guest=qmptest,process=qmptest'],
    { timeout: 10_000 },
  );
  pid = Number(readFileSync(pidfile, 'utf8').trim());
  assert.ok(Number.isInteger(pid) && pid > 1, `pid from pidfile: ${pid}`);
  return { dir, sock, pid };
}

/** Connects and registers the client to be closed in t.after. */
async function connect(t: TestContext, vm: Vm, timeoutMs = 3000): Promise<QmpClient> {
  const c = await QmpClient.connect(vm.sock, { timeoutMs });
  t.after(() => c.close());
  return c;
}

describe('QmpClient against real QEMU', { timeout: 60_000 }, () => {
  it('connects right after -daemonize returns and negotiates capabilities', async (t) => {
    const vm = await startQemu(t);
    assert.ok(existsSync(vm.sock), 'socket exists when -daemonize returns');
    const c = await connect(t, vm); // no retry: QMP already listens
    assert.equal(c.greeting?.version?.qemu.major, 7);
    assert.ok(c.isOpen);
    assert.deepEqual(await c.execute('query-name'), { name: 'qmptest' });
    assert.equal(readFileSync(`/proc/${vm.pid}/comm`, 'utf8').trim(), 'qmptest');
  });

  it('query-status, cont -> RESUME, stop -> STOP, system_reset -> RESET', async (t) => {
    const vm = await startQemu(t);
    const c = await connect(t, vm);
    const events: QmpEvent[] = [];
    c.onEvent((e) => events.push(e));
    assert.deepEqual(await c.queryStatus(), { running: false, status: 'prelaunch' });

    const resume = c.waitForEvent('RESUME', { timeoutMs: 3000 });
    assert.deepEqual(await c.execute('cont'), {});
    await resume;
    assert.deepEqual(await c.queryStatus(), { running: true, status: 'running' });

    const stop = c.waitForEvent('STOP', { timeoutMs: 3000 });
    await c.execute('stop');
    await stop;
    assert.deepEqual(await c.queryStatus(), { running: false, status: 'paused' });

    const reset = c.waitForEvent('RESET', { timeoutMs: 3000 });
    await c.execute('system_reset');
    const r = await reset;
    assert.deepEqual(r.data, { guest: false, reason: 'host-qmp-system-reset' });
    // A reset of a stopped VM puts it back to prelaunch (QEMU 7.2).
    assert.deepEqual(await c.queryStatus(), { running: false, status: 'prelaunch' });

    assert.deepEqual(
      events.map((e) => e.event),
      ['RESUME', 'STOP', 'RESET'],
    );
    for (const e of events) assert.ok(e.timestamp.seconds > 0);
  });

  it('an unknown command -> QmpError command-error with class CommandNotFound', async (t) => {
    const vm = await startQemu(t);
    const c = await connect(t, vm);
    await assert.rejects(c.execute('no-such-command'), (e: unknown) => {
      assert.ok(e instanceof QmpError && e instanceof AgentError);
      assert.equal(e.kind, 'command-error');
      assert.equal(e.errorClass, 'CommandNotFound');
      assert.equal(e.command, 'no-such-command');
      assert.equal(e.socketPath, vm.sock);
      assert.match(e.message, /no-such-command.*CommandNotFound/);
      return true;
    });
    // Bad arguments: another class, same connection still usable.
    await assert.rejects(c.execute('query-status', { bogus: 1 }), (e: unknown) => e instanceof QmpError && e.errorClass === 'GenericError');
    assert.equal((await c.queryStatus()).status, 'prelaunch');
  });

  it('a second client times out on the greeting while the first is connected, and succeeds after', async (t) => {
    const vm = await startQemu(t);
    const first = await connect(t, vm);
    const t0 = Date.now();
    await assert.rejects(QmpClient.connect(vm.sock, { timeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.kind, 'greeting-timeout');
      assert.equal(e.socketPath, vm.sock);
      assert.match(e.message, /no QMP greeting within \d+ ms.*another client/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 250, 'waited for the timeout');
    assert.equal((await first.queryStatus()).status, 'prelaunch', 'first client unaffected');

    // A waiting client gets its greeting as soon as the first leaves.
    const waiting = QmpClient.connect(vm.sock, { timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 100));
    await first.close();
    const second = await waiting;
    t.after(() => second.close());
    assert.equal((await second.queryStatus()).status, 'prelaunch');
    await second.close();

    // And a fresh connect works too.
    const third = await connect(t, vm);
    assert.equal((await third.queryStatus()).status, 'prelaunch');
  });

  it('parallel executes are matched by id', async (t) => {
    const vm = await startQemu(t);
    const c = await connect(t, vm);
    const cmds = Array.from({ length: 30 }, (_, i) => ['query-status', 'query-name', 'query-version'][i % 3] ?? 'query-status');
    const replies = await Promise.all(cmds.map((cmd) => c.execute(cmd).then((r) => [cmd, r] as const)));
    for (const [cmd, r] of replies) {
      if (cmd === 'query-status') assert.deepEqual(StatusReply.parse(r).status, 'prelaunch');
      else if (cmd === 'query-name') assert.deepEqual(r, { name: 'qmptest' });
      else assert.equal(VersionReply.parse(r).qemu.major, 7);
    }
    // Mixed with a failing one, each still gets its own answer.
    const [ok, bad] = await Promise.allSettled([c.execute('query-name'), c.execute('nope')]);
    assert.deepEqual(ok, { status: 'fulfilled', value: { name: 'qmptest' } });
    assert.ok(bad?.status === 'rejected' && bad.reason instanceof QmpError && bad.reason.errorClass === 'CommandNotFound');
  });

  it('quit -> SHUTDOWN (host-qmp-quit), then an expected close; QEMU exits and removes its files', async (t) => {
    const vm = await startQemu(t);
    const c = await connect(t, vm);
    const events: QmpEvent[] = [];
    c.onEvent((e) => events.push(e));
    const shutdown = c.waitForEvent('SHUTDOWN', { timeoutMs: 3000 });
    shutdown.catch(() => {}); // may settle after quit() resolves
    await c.quit({ timeoutMs: 5000 });
    const info = await c.closed;
    assert.equal(info.expected, true);
    assert.equal(info.reason, 'quit');
    assert.equal(c.isOpen, false);
    const s = await shutdown;
    assert.deepEqual(s.data, { guest: false, reason: 'host-qmp-quit' });
    assert.ok(await waitFor(() => !alive(vm.pid), 5000), 'QEMU gone (or a zombie)');
    assert.ok(await waitFor(() => !existsSync(vm.sock) && !existsSync(join(vm.dir, 'qemu.pid')), 2000), 'QEMU removed socket and pidfile');
    await assert.rejects(c.execute('query-status'), (e: unknown) => e instanceof QmpError && e.kind === 'closed');
    await assert.rejects(QmpClient.connect(vm.sock, { timeoutMs: 1000 }), (e: unknown) => e instanceof QmpError && e.kind === 'not-found');
  });

  it('kill -9 -> unexpected close with no SHUTDOWN; reconnecting gives the stale-socket error', async (t) => {
    const vm = await startQemu(t);
    const c = await connect(t, vm);
    const events: QmpEvent[] = [];
    c.onEvent((e) => events.push(e));
    // A command in flight when QEMU dies is rejected, not left hanging.
    const pendingCmd = c.execute('query-status').then(
      () => 'replied',
      (e: unknown) => (e instanceof QmpError ? e.kind : 'other'),
    );
    process.kill(vm.pid, 'SIGKILL');
    const info = await c.closed;
    assert.equal(info.expected, false);
    assert.equal(info.reason, 'remote');
    assert.deepEqual(events, [], 'no event on kill -9');
    assert.ok(['replied', 'closed'].includes(await pendingCmd));
    // Our connection can close a few ms before the dying process has closed its listening
    // socket (the leader is already a zombie, another thread still exits): a connect in that
    // window is accepted and then closed (kind 'closed'). Once every thread is gone it refuses.
    assert.ok(await waitFor(() => !alive(vm.pid), 5000), 'every QEMU thread gone (or zombie)');
    assert.ok(existsSync(vm.sock), 'the socket file stays behind');
    assert.ok(existsSync(join(vm.dir, 'qemu.pid')), 'the pidfile stays behind');
    await assert.rejects(QmpClient.connect(vm.sock, { timeoutMs: 1000 }), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.kind, 'refused');
      assert.equal(e.code, 'ECONNREFUSED');
      assert.equal(e.socketPath, vm.sock);
      assert.match(e.message, /stale socket/);
      return true;
    });
  });

  it('a missing socket -> not-found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
    try {
      await assert.rejects(QmpClient.connect(join(dir, 'nope.sock'), { timeoutMs: 1000 }), (e: unknown) => {
        assert.ok(e instanceof QmpError);
        assert.equal(e.kind, 'not-found');
        assert.equal(e.code, 'ENOENT');
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const StatusReply = z.object({ running: z.boolean(), status: z.string() });
const VersionReply = z.object({ qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }) });
