// Readiness and watchdog, the pure part (src/agent/service-notify.ts) and its timer driver
// (service-watch.ts) with a notifier that records: what systemd's environment says, the STATUS
// line, and when READY=1, STATUS= and WATCHDOG=1 go out. The invariant under test: pings only
// while passes complete. Timers are node:test's mock timers.
import { strict as assert } from 'node:assert';
import { afterEach, describe, it, mock } from 'node:test';
import type { PassReport } from '../../src/agent/metrics-sink.js';
import { mergeMessages, notifyEnv, notifyLines, NotifyPolicy, statusLine, type NotifyMessage } from '../../src/agent/service-notify.js';
import { ServiceWatch } from '../../src/agent/service-watch.js';

const report = (over: Partial<PassReport> = {}): PassReport => ({
  seconds: 0.003,
  endedAt: new Date(1_700_000_000_500),
  workloads: [],
  backoff: 0,
  runtimesUp: { container: true, unikernel: true },
  leases: { ip: 0, host_port: 0 },
  ...over,
});

describe('notifyEnv: sd_notify\'s rules', () => {
  it('does nothing without NOTIFY_SOCKET (by hand, CI, Type=simple)', () => {
    assert.equal(notifyEnv({}, 42), undefined);
    assert.equal(notifyEnv({ NOTIFY_SOCKET: '', WATCHDOG_USEC: '30000000' }, 42), undefined);
  });

  it('pings every WATCHDOG_USEC/2, in ms', () => {
    assert.deepEqual(notifyEnv({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000' }, 42), { socket: '/run/systemd/notify', pingEveryMs: 15_000 });
    assert.deepEqual(notifyEnv({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), { socket: '/run/systemd/notify', pingEveryMs: 15_000 });
  });

  it('no watchdog when WATCHDOG_PID names another process, or WATCHDOG_USEC is absent or not a positive integer', () => {
    const sock = '/run/systemd/notify';
    assert.equal(notifyEnv({ NOTIFY_SOCKET: sock, WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)?.pingEveryMs, undefined);
    assert.equal(notifyEnv({ NOTIFY_SOCKET: sock }, 42)?.pingEveryMs, undefined);
    for (const bad of ['0', '-5', '30s', '1e6', ''])
      assert.equal(notifyEnv({ NOTIFY_SOCKET: sock, WATCHDOG_USEC: bad }, 42)?.pingEveryMs, undefined, bad);
    assert.equal(notifyEnv({ NOTIFY_SOCKET: sock }, 42)?.socket, sock, 'readiness still works');
  });
});

describe('statusLine: one line from the pass\'s counts', () => {
  it('sums each drift over runtimes, in sync first, then backoffs', () => {
    const r = report({
      workloads: [
        { runtime: 'container', drift: 'in-sync', count: 9 },
        { runtime: 'unikernel', drift: 'in-sync', count: 3 },
        { runtime: 'unikernel', drift: 'missing', count: 1 },
        { runtime: 'container', drift: 'spec-changed', count: 2 },
      ],
      backoff: 1,
    });
    assert.equal(statusLine(r), '12 in sync, 1 missing, 2 spec changed, 1 backing off');
  });

  it('names a runtime that could not list, and says when there is nothing', () => {
    assert.equal(statusLine(report()), 'no workloads');
    const r = report({ workloads: [{ runtime: 'container', drift: 'unknown', count: 2 }], runtimesUp: { container: false, unikernel: true } });
    assert.equal(statusLine(r), '2 unknown; container runtime not listing');
  });
});

describe('notifyLines and mergeMessages', () => {
  it('one VARIABLE=VALUE a line, STATUS kept to one line', () => {
    assert.deepEqual(notifyLines({ READY: '1', STATUS: 'a\n b', WATCHDOG: '1' }), ['READY=1', 'STATUS=a b', 'WATCHDOG=1']);
    assert.deepEqual(notifyLines({ STOPPING: '1' }), ['STOPPING=1']);
  });

  it('merging keeps READY and WATCHDOG, and the newest STATUS', () => {
    const m = mergeMessages(mergeMessages(undefined, { READY: '1', STATUS: 'old' }), { WATCHDOG: '1' });
    assert.deepEqual(notifyLines(mergeMessages(m, { STATUS: 'new' })), ['READY=1', 'STATUS=new', 'WATCHDOG=1']);
  });
});

describe('NotifyPolicy: what to send when', () => {
  it('READY=1 with the first STATUS after the first pass, then STATUS only when the summary changes', () => {
    const p = new NotifyPolicy(true);
    assert.deepEqual(p.passDone(report()), { READY: '1', STATUS: 'no workloads' });
    assert.equal(p.passDone(report()), undefined, 'same summary: nothing to send');
    assert.deepEqual(p.passDone(report({ workloads: [{ runtime: 'container', drift: 'missing', count: 1 }] })), { STATUS: '1 missing' });
  });

  it('no ping before READY', () => {
    const p = new NotifyPolicy(true);
    assert.deepEqual(p.tick(false), {});
    assert.deepEqual(p.tick(true), {});
  });

  it('pings on a tick when a pass completed since the last one', () => {
    const p = new NotifyPolicy(true);
    p.passDone(report());
    assert.deepEqual(p.tick(false), { send: { WATCHDOG: '1' } });
    p.passDone(report());
    assert.deepEqual(p.tick(true), { send: { WATCHDOG: '1' } }, 'a new pass running does not matter: one completed');
  });

  it('an idle loop: the tick asks for a pass, and that pass pings when it completes', () => {
    const p = new NotifyPolicy(true);
    p.passDone(report());
    p.tick(false);
    assert.deepEqual(p.tick(false), { wake: true });
    assert.deepEqual(p.passDone(report()), { WATCHDOG: '1' });
  });

  it('a loop stuck in a pass never pings again, however many ticks pass', () => {
    const p = new NotifyPolicy(true);
    p.passDone(report());
    p.tick(false);
    for (let i = 0; i < 10; i++) assert.deepEqual(p.tick(true), {}, `tick ${i}`);
    // When the pass finally completes, the owed ping goes at once (not a whole period later).
    assert.deepEqual(p.passDone(report()), { WATCHDOG: '1' });
  });

  it('without a watchdog: readiness and status only', () => {
    const p = new NotifyPolicy(false);
    assert.deepEqual(p.passDone(report()), { READY: '1', STATUS: 'no workloads' });
    assert.deepEqual(p.tick(false), {});
    assert.equal(p.passDone(report()), undefined);
  });

  it('stopping: STOPPING=1 with why, then silence', () => {
    const p = new NotifyPolicy(true);
    p.passDone(report());
    const m = p.stopping('SIGTERM');
    assert.equal(m.STOPPING, '1');
    assert.match(m.STATUS ?? '', /^stopping \(SIGTERM\)/);
    assert.equal(p.passDone(report({ backoff: 1 })), undefined);
    assert.deepEqual(p.tick(false), {});
  });
});

describe('ServiceWatch: the timer driver', () => {
  afterEach(() => mock.timers.reset());

  function harness(pingEveryMs: number | undefined): { watch: ServiceWatch; sent: NotifyMessage[]; wakes: string[]; loop: { running: boolean } } {
    const sent: NotifyMessage[] = [];
    const wakes: string[] = [];
    const loop = { running: false };
    const watch = new ServiceWatch({ socket: '/run/systemd/notify', pingEveryMs }, { send: (m) => void sent.push(m), close: async () => undefined });
    watch.start({ passRunning: () => loop.running, wake: (why) => void wakes.push(why) });
    return { watch, sent, wakes, loop };
  }

  it('pings every period while passes complete, asks an idle loop for a pass, and stops pinging a stuck one', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const { watch, sent, wakes, loop } = harness(15_000);
    watch.passDone(report());
    assert.deepEqual(sent.splice(0), [{ READY: '1', STATUS: 'no workloads' }]);
    mock.timers.tick(15_000);
    assert.deepEqual(sent.splice(0), [{ WATCHDOG: '1' }]);
    // Idle: the tick wakes a pass; its completion pings.
    mock.timers.tick(15_000);
    assert.deepEqual(wakes, ['watchdog']);
    assert.deepEqual(sent, []);
    watch.passDone(report());
    assert.deepEqual(sent.splice(0), [{ WATCHDOG: '1' }]);
    // Stuck: a pass runs and never completes.
    loop.running = true;
    mock.timers.tick(15_000 * 10);
    assert.deepEqual(sent, [], 'no ping while the pass does not complete');
    assert.deepEqual(wakes, ['watchdog'], 'and no more wakes: a pass is running');
    watch.stopping('SIGTERM');
    const [stopping] = sent as NotifyMessage[];
    assert.equal(stopping?.STOPPING, '1');
  });

  it('no watchdog: no timer, no pings, READY still sent', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const { watch, sent, wakes } = harness(undefined);
    watch.passDone(report());
    mock.timers.tick(60_000);
    assert.deepEqual(sent, [{ READY: '1', STATUS: 'no workloads' }]);
    assert.deepEqual(wakes, []);
  });
});
