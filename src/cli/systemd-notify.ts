/**
 * The ServiceNotifier adapter: sd_notify messages sent with systemd's own `systemd-notify`, one
 * process a message. Node has no datagram unix sockets, and this needs no native module (measured
 * against unix-dgram in docs/systemd-testing.md, "Item 2"). systemd-notify (systemd >= 246) waits
 * until PID 1 has read the message (BARRIER=1), so PID 1 can still find the sender's cgroup and
 * credit the message to the unit: with `--no-block` it cannot, and messages (READY=1 too) are
 * lost. The sender is a child, not the main process: the unit needs NotifyAccess=all.
 * At most one systemd-notify runs at a time; messages that come meanwhile are merged into one.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { mergeMessages, notifyLines, type NotifyMessage, type ServiceNotifier } from '../agent/service-notify.js';

/** systemd-notify waits up to 5 s for PID 1 to read the message; past this it is killed. */
const SEND_TIMEOUT_MS = 10_000;
/** How long a stopping agent waits for its last message (STOPPING=1) to be read. */
const CLOSE_WAIT_MS = 3_000;

export function systemdNotifier(socket: string, log: Logger, binary = 'systemd-notify'): ServiceNotifier {
  let running: Promise<void> | undefined;
  let pending: NotifyMessage | undefined;
  let warned = false;

  const sendNow = (m: NotifyMessage): Promise<void> =>
    new Promise<void>((resolve) => {
      // NOTIFY_SOCKET only for this child: the agent took it out of its own environment (podman
      // would otherwise hand it to containers, and conmon's messages would be credited to the agent).
      const child = spawn(binary, notifyLines(m), {
        env: { ...process.env, NOTIFY_SOCKET: socket },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: SEND_TIMEOUT_MS,
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const fail = (why: string): void => {
        // Once: a missing systemd-notify would otherwise log on every ping.
        const what = `cannot tell systemd: ${why} (readiness and watchdog pings do not reach it)`;
        if (!warned) log.error({ binary, message: notifyLines(m) }, what);
        warned = true;
      };
      child.on('error', (e) => (fail(e.message), resolve()));
      child.on('close', (code, signal) => {
        if (code !== 0) fail(`${binary} exited ${code ?? signal}: ${err.trim()}`);
        resolve();
      });
    });

  const pump = (): void => {
    if (running || !pending) return;
    const m = pending;
    pending = undefined;
    running = sendNow(m).then(() => {
      running = undefined;
      pump();
    });
  };

  return {
    send(m) {
      pending = mergeMessages(pending, m);
      pump();
    },
    async close() {
      const deadline = Date.now() + CLOSE_WAIT_MS;
      while ((running || pending) && Date.now() < deadline) {
        await Promise.race([running, new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())).unref())]);
      }
    },
  };
}
