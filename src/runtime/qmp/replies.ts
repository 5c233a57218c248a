/**
 * The commands of one QMP connection waiting for their reply: each gets a unique id and a timer;
 * a reply settles the command whose id it echoes. Every command is settled exactly once: by its
 * reply, its timeout, or the connection closing. A reply to a command that timed out is dropped.
 */
import { QmpError } from './errors.js';
import type { QmpMessage } from './wire.js';

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: QmpError) => void;
  timer: NodeJS.Timeout | undefined;
}

export class PendingReplies {
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;

  constructor(private readonly socketPath: string) {}

  /**
   * The reply to `command`, sent by `write` with a new id once the reply is expected (a reply can
   * never come first). Rejects with `timeout` after `timeoutMs`, or with what `write` throws.
   */
  expect(command: string, timeoutMs: number, write: (id: string) => void): Promise<unknown> {
    const id = `agent-${this.nextId++}`;
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = { command, resolve, reject, timer: undefined };
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError('timeout', this.socketPath, command, `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, p);
      write(id);
    });
  }

  /** Settles the command a reply belongs to: its value, or QEMU's error as a `command-error`. */
  settle(msg: Extract<QmpMessage, { type: 'return' | 'error' }>): void {
    const key = this.keyOf(msg.id);
    const p = key === undefined ? undefined : this.pending.get(key);
    if (key === undefined || !p) return; // a reply to a command that timed out: dropped
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (msg.type === 'return') p.resolve(msg.value);
    else {
      p.reject(
        new QmpError('command-error', this.socketPath, p.command, `${msg.errorClass}: ${msg.desc}`, {
          errorClass: msg.errorClass,
          desc: msg.desc,
        }),
      );
    }
  }

  /** The connection closed: every command still waiting is rejected with the error made for it. */
  rejectAll(errorFor: (command: string) => QmpError): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(errorFor(p.command));
    }
  }

  /**
   * The pending entry a reply belongs to. A reply without an id (QEMU could not even read the
   * id, e.g. a JSON parse error) goes to the oldest pending command: QEMU answers in order.
   */
  private keyOf(id: string | number | undefined): string | undefined {
    if (id !== undefined) return String(id);
    const first = this.pending.keys().next();
    return first.done ? undefined : first.value;
  }
}
