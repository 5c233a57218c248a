/**
 * A small QMP (QEMU Machine Protocol) client over a unix socket, on `node:net` only: connect and
 * handshake, commands with their replies (replies.ts), events, and the close that tells the agent
 * QEMU died. The wire format is wire.ts, the errors errors.ts.
 *
 * Facts about QEMU this client is shaped by (see HOST-FACTS "QEMU and KVM"):
 * - QMP serves one client at a time: a second connection is accepted by the kernel but gets no
 *   greeting until the first leaves, so "no greeting in time" usually means "someone else is
 *   connected" (keep one long-lived connection per VM).
 * - `kill -9` of QEMU produces no event, only a socket close; the socket file stays behind and
 *   connecting to it then fails with ECONNREFUSED. An unexpected `close` is how the agent
 *   notices QEMU died.
 * - `quit` is followed by `SHUTDOWN {reason: "host-qmp-quit"}` and the socket closing, often with
 *   ECONNRESET, sometimes before the reply to `quit` is read.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { connectSocket } from './connect.js';
import { QmpError } from './errors.js';
import { PendingReplies } from './replies.js';
import { LineBuffer, parseQmpMessage, StatusSchema, truncate, type QmpEvent, type QmpGreeting, type QmpMessage, type QmpStatus } from './wire.js';

export interface QmpCloseInfo {
  /** True when this side asked for it: `close()`, or the socket closing after `quit` was sent. */
  expected: boolean;
  /** `client`: close() was called; `quit`: after sending quit; `remote`: QEMU closed it or died. */
  reason: 'client' | 'quit' | 'remote';
  /** The socket error that came with the close, if any (e.g. ECONNRESET). */
  error: Error | undefined;
}

interface QmpClientEvents {
  event: [QmpEvent];
  close: [QmpCloseInfo];
  /** Lines QEMU sent that could not be understood (the connection stays up). */
  protocolError: [QmpError];
}

export interface QmpConnectOptions {
  /** Overall budget for connect + greeting + qmp_capabilities. Default 5000 ms. */
  timeoutMs?: number;
}

export interface QmpExecuteOptions<T> {
  /** Default: the client's defaultTimeoutMs (10000 ms). */
  timeoutMs?: number;
  /** Validates the `return` value; without it the value is returned as-is, typed as T. */
  schema?: z.ZodType<T>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

export class QmpClient extends EventEmitter<QmpClientEvents> {
  /** Resolves once, when the connection has closed (whatever the reason). Never rejects. */
  readonly closed: Promise<QmpCloseInfo>;
  /** The greeting QEMU sent (version, capabilities). */
  greeting: QmpGreeting | undefined;
  defaultTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS;

  private readonly lines = new LineBuffer();
  private readonly replies: PendingReplies;
  private closeInfo: QmpCloseInfo | undefined;
  private closeRequested = false;
  private quitSent = false;
  private lastError: Error | undefined;
  private onGreeting: ((g: QmpGreeting) => void) | undefined;
  private resolveClosed!: (info: QmpCloseInfo) => void;

  private constructor(
    private readonly stream: Duplex,
    /** The socket path (used in error messages). */
    readonly socketPath: string,
  ) {
    super();
    this.replies = new PendingReplies(socketPath);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    stream.on('data', (chunk: Buffer | string) => this.onData(chunk));
    stream.on('error', (err: Error) => {
      this.lastError = err;
    });
    stream.on('close', () => this.onStreamClose());
  }

  /** Connects to QEMU's QMP unix socket, reads the greeting and negotiates capabilities. */
  static connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    return connectSocket(socketPath, timeoutMs).then((socket) => QmpClient.handshake(socket, socketPath, Math.max(1, deadline - Date.now())));
  }

  /**
   * Runs the QMP handshake on an already-connected stream (a socket, or a fake one in tests).
   * On failure the stream is destroyed.
   */
  static async handshake(stream: Duplex, label: string, timeoutMs: number = DEFAULT_CONNECT_TIMEOUT_MS): Promise<QmpClient> {
    const client = new QmpClient(stream, label);
    const deadline = Date.now() + timeoutMs;
    try {
      client.greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const timer = setTimeout(() => {
          const why = `connected but no QMP greeting within ${timeoutMs} ms (QMP serves one client at a time: another client is probably connected)`;
          reject(new QmpError('greeting-timeout', label, undefined, why));
        }, timeoutMs);
        client.onGreeting = (g) => {
          clearTimeout(timer);
          resolve(g);
        };
        void client.closed.then((info) => {
          clearTimeout(timer);
          reject(new QmpError('closed', label, undefined, 'connection closed before the QMP greeting (QEMU exiting?)', { cause: info.error }));
        });
      });
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      return client;
    } catch (e) {
      client.onGreeting = undefined;
      client.closeRequested = true;
      stream.destroy();
      throw e;
    }
  }

  /** True until the connection closes. */
  get isOpen(): boolean {
    return this.closeInfo === undefined;
  }

  /**
   * Sends a command and resolves with its `return` value. Rejects with a QmpError:
   * `command-error` (QEMU's class/desc), `timeout`, `closed`, or `protocol` (schema mismatch).
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions<T> = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const raw = this.send(command, args, timeoutMs);
    const schema = options.schema;
    if (!schema) return raw as Promise<T>;
    return raw.then((value) => {
      const r = schema.safeParse(value);
      if (!r.success) {
        throw new QmpError('protocol', this.socketPath, command, `unexpected reply: ${truncate(JSON.stringify(value))}`, { cause: r.error });
      }
      return r.data;
    });
  }

  /** `query-status`: whether the guest CPUs run, and the run state. */
  async queryStatus(options: { timeoutMs?: number } = {}): Promise<QmpStatus> {
    const s = await this.execute('query-status', undefined, { ...options, schema: StatusSchema });
    return { running: s.running, status: s.status };
  }

  /** `system_powerdown`: ACPI power button. Only a guest with an ACPI handler reacts to it. */
  async systemPowerdown(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.execute('system_powerdown', undefined, options);
  }

  /**
   * `quit`: QEMU exits at once. Resolves once the connection has closed. QEMU may reset the
   * connection right after replying, or before the reply is read: a close after sending quit is
   * success. Rejects if QEMU answers with an error, or if it neither replies nor closes in time.
   */
  async quit(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    if (!this.isOpen) throw this.closedError('quit');
    const deadline = Date.now() + timeoutMs;
    const reply = this.send('quit', undefined, timeoutMs);
    this.quitSent = true;
    try {
      await reply;
    } catch (e) {
      // Closed before (or instead of) the reply: that is how quit succeeds.
      if (!(e instanceof QmpError && e.kind === 'closed')) {
        if (this.isOpen) this.quitSent = false;
        throw e;
      }
    }
    // Replied: wait for the close that follows.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(1, deadline - Date.now()));
    });
    const r = await Promise.race([this.closed, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      throw new QmpError('timeout', this.socketPath, 'quit', `QEMU replied to quit but the connection stayed open for ${timeoutMs} ms`);
    }
  }

  /** Subscribes to QMP events; returns the unsubscribe function. */
  onEvent(cb: (e: QmpEvent) => void): () => void {
    this.on('event', cb);
    return () => this.off('event', cb);
  }

  /** Subscribes to the close notification; returns the unsubscribe function. */
  onClose(cb: (info: QmpCloseInfo) => void): () => void {
    this.on('close', cb);
    return () => this.off('close', cb);
  }

  /**
   * Resolves with the next event named `name` (and matching `predicate`) that arrives after this
   * call. Rejects with `timeout` after timeoutMs, or `closed` if the connection closes first.
   * Subscribe before sending the command that triggers the event.
   */
  waitForEvent(name: string, options: { timeoutMs?: number; predicate?: (e: QmpEvent) => boolean } = {}): Promise<QmpEvent> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      if (!this.isOpen) return reject(this.closedError(undefined, `waiting for event ${name}`));
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      const onEvent = (e: QmpEvent): void => {
        if (e.event !== name || (options.predicate && !options.predicate(e))) return;
        cleanup();
        resolve(e);
      };
      const onClose = (): void => {
        cleanup();
        reject(this.closedError(undefined, `connection closed while waiting for event ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpError('timeout', this.socketPath, undefined, `no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /** Closes the connection (QEMU keeps running). Idempotent; resolves once closed. */
  async close(): Promise<void> {
    if (this.isOpen) {
      this.closeRequested = true;
      this.stream.destroy();
    }
    await this.closed;
  }

  // -------------------------------------------------------------------------------------------

  private send(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    if (!this.isOpen || this.stream.destroyed || !this.stream.writable) {
      return Promise.reject(this.closedError(command));
    }
    return this.replies.expect(command, timeoutMs, (id) => {
      this.stream.write(`${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\n`);
    });
  }

  private onData(chunk: Buffer | string): void {
    for (const line of this.lines.push(chunk)) {
      let msg: QmpMessage;
      try {
        msg = parseQmpMessage(line);
      } catch (e) {
        this.emit('protocolError', new QmpError('protocol', this.socketPath, undefined, e instanceof Error ? e.message : String(e), { cause: e }));
        continue;
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: QmpMessage): void {
    switch (msg.type) {
      case 'greeting': {
        const cb = this.onGreeting;
        this.onGreeting = undefined;
        cb?.(msg.greeting);
        return;
      }
      case 'event':
        this.emit('event', msg.event);
        return;
      case 'return':
      case 'error':
        this.replies.settle(msg);
        return;
    }
  }

  private onStreamClose(): void {
    if (this.closeInfo) return;
    const reason: QmpCloseInfo['reason'] = this.closeRequested ? 'client' : this.quitSent ? 'quit' : 'remote';
    const info: QmpCloseInfo = { expected: reason !== 'remote', reason, error: this.lastError };
    this.closeInfo = info;
    this.replies.rejectAll((command) => this.closedError(command, 'connection closed before the reply', info.error));
    this.resolveClosed(info);
    this.emit('close', info);
  }

  private closedError(command: string | undefined, message = 'connection is closed', cause?: Error): QmpError {
    return new QmpError('closed', this.socketPath, command, message, cause ? { cause } : undefined);
  }
}
