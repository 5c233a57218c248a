/**
 * A small QMP (QEMU Machine Protocol) client over a unix socket, on `node:net` only.
 *
 * Protocol: newline-delimited JSON both ways. On connect QEMU sends a greeting (`{"QMP": ...}`);
 * the client must send `qmp_capabilities` before anything else. Each command we send carries a
 * unique `id`, which QEMU echoes in its reply (`{"return": ...}` or `{"error": {class, desc}}`);
 * asynchronous events (`{"event", "data", "timestamp"}`) can arrive between replies at any time.
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
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { AgentError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// Errors

export type QmpErrorKind =
  /** ECONNREFUSED: the socket file exists but nothing listens (stale socket of a dead QEMU). */
  | 'refused'
  /** ENOENT: no socket file at that path. */
  | 'not-found'
  /** EAGAIN: QEMU's listen backlog is full (a client is connected and another one waits). */
  | 'busy'
  /** Any other error while connecting (EACCES, ENOTSOCK, ...). */
  | 'connect-failed'
  /** Connected, but no greeting in time: most likely another QMP client is connected. */
  | 'greeting-timeout'
  /** A command got no reply in time. */
  | 'timeout'
  /** QEMU answered a command with `{"error": {"class", "desc"}}`. */
  | 'command-error'
  /** The connection is (or got) closed: the command could not be sent or got no reply. */
  | 'closed'
  /** QEMU sent something that is not QMP (bad JSON, unexpected shape, bad reply to a schema). */
  | 'protocol';

export class QmpError extends AgentError {
  /** For `command-error`: QEMU's error class, e.g. `CommandNotFound`, `GenericError`. */
  readonly errorClass: string | undefined;
  /** For `command-error`: QEMU's human-readable description. */
  readonly desc: string | undefined;
  /** For connect failures: the errno code (`ECONNREFUSED`, `ENOENT`, ...). */
  readonly code: string | undefined;

  constructor(
    readonly kind: QmpErrorKind,
    /** Socket path (or the label of a test stream). */
    readonly socketPath: string,
    /** The command concerned; undefined for connection-level errors. */
    readonly command: string | undefined,
    message: string,
    options?: { cause?: unknown; errorClass?: string; desc?: string; code?: string },
  ) {
    super(`qmp ${socketPath}${command ? ` ${command}` : ''}: ${message}`, options?.cause ? { cause: options.cause } : undefined);
    this.errorClass = options?.errorClass;
    this.desc = options?.desc;
    this.code = options?.code;
  }
}

// ---------------------------------------------------------------------------------------------
// Wire format

const GreetingSchema = z.object({
  QMP: z.object({
    version: z
      .object({
        qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }),
        package: z.string(),
      })
      .optional(),
    capabilities: z.array(z.string()),
  }),
});
export type QmpGreeting = z.infer<typeof GreetingSchema>['QMP'];

const IdSchema = z.union([z.string(), z.number()]).optional();

const ErrorReplySchema = z.object({
  error: z.object({ class: z.string(), desc: z.string() }),
  id: IdSchema,
});

const TimestampSchema = z.object({ seconds: z.number(), microseconds: z.number() });

const EventSchema = z.object({
  event: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: TimestampSchema,
});

export interface QmpEvent {
  /** e.g. `SHUTDOWN`, `POWERDOWN`, `STOP`, `RESUME`, `RESET`. */
  event: string;
  /** Event payload; `{}` when QEMU sent none. e.g. SHUTDOWN: `{ guest: false, reason: "host-qmp-quit" }`. */
  data: Record<string, unknown>;
  /** QEMU's host clock when the event happened. */
  timestamp: { seconds: number; microseconds: number };
}

/** One parsed line from QEMU. */
export type QmpMessage =
  | { type: 'greeting'; greeting: QmpGreeting }
  | { type: 'return'; id: string | number | undefined; value: unknown }
  | { type: 'error'; id: string | number | undefined; errorClass: string; desc: string }
  | { type: 'event'; event: QmpEvent };

/** Parses one line of QMP output. Throws a plain Error on anything that is not QMP. */
export function parseQmpMessage(line: string): QmpMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new Error(`not JSON: ${truncate(line)}`, { cause: e });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`not a JSON object: ${truncate(line)}`);
  }
  if ('return' in raw) {
    const id = IdSchema.safeParse('id' in raw ? raw.id : undefined);
    if (!id.success) throw new Error(`bad reply id: ${truncate(line)}`);
    return { type: 'return', id: id.data, value: raw.return };
  }
  if ('error' in raw) {
    const r = ErrorReplySchema.safeParse(raw);
    if (!r.success) throw new Error(`malformed error reply: ${truncate(line)}`);
    return { type: 'error', id: r.data.id, errorClass: r.data.error.class, desc: r.data.error.desc };
  }
  if ('event' in raw) {
    const r = EventSchema.safeParse(raw);
    if (!r.success) throw new Error(`malformed event: ${truncate(line)}`);
    return { type: 'event', event: { event: r.data.event, data: r.data.data ?? {}, timestamp: r.data.timestamp } };
  }
  if ('QMP' in raw) {
    const r = GreetingSchema.safeParse(raw);
    if (!r.success) throw new Error(`malformed greeting: ${truncate(line)}`);
    return { type: 'greeting', greeting: r.data.QMP };
  }
  throw new Error(`unknown QMP message: ${truncate(line)}`);
}

/**
 * Splits a byte stream into lines. Keeps a partial trailing line until its newline arrives;
 * decodes UTF-8 across chunk boundaries; drops `\r` and blank lines (QEMU ends lines with `\r\n`).
 */
export class LineBuffer {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** Feeds a chunk; returns the complete lines it finished (possibly none, possibly many). */
  push(chunk: Buffer | string): string[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const parts = this.pending.split('\n');
    this.pending = parts.pop() ?? '';
    const out: string[] = [];
    for (const p of parts) {
      const line = p.endsWith('\r') ? p.slice(0, -1) : p;
      if (line.trim() !== '') out.push(line);
    }
    return out;
  }

  /** The incomplete trailing text (no newline yet). */
  get rest(): string {
    return this.pending;
  }
}

const truncate = (s: string, n = 200): string => (s.length > n ? `${s.slice(0, n)}...` : s);

// ---------------------------------------------------------------------------------------------
// Client

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

export interface QmpStatus {
  running: boolean;
  /** e.g. `prelaunch`, `running`, `paused`, `shutdown`, `internal-error`. */
  status: string;
}

const StatusSchema = z.object({ running: z.boolean(), status: z.string() });

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: QmpError) => void;
  timer: NodeJS.Timeout | undefined;
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
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
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
    return new Promise<QmpClient>((resolve, reject) => {
      const socket = createConnection({ path: socketPath });
      let settled = false;
      const fail = (err: QmpError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new QmpError('connect-failed', socketPath, undefined, `connect did not complete within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      socket.once('error', (err: NodeJS.ErrnoException) => fail(connectError(socketPath, err)));
      socket.once('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners('error');
        QmpClient.handshake(socket, socketPath, Math.max(1, deadline - Date.now())).then(resolve, reject);
      });
    });
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
          reject(
            new QmpError(
              'greeting-timeout',
              label,
              undefined,
              `connected but no QMP greeting within ${timeoutMs} ms ` +
                '(QMP serves one client at a time: another client is probably connected)',
            ),
          );
        }, timeoutMs);
        client.onGreeting = (g) => {
          clearTimeout(timer);
          resolve(g);
        };
        void client.closed.then((info) => {
          clearTimeout(timer);
          reject(
            new QmpError('closed', label, undefined, 'connection closed before the QMP greeting (QEMU exiting?)', {
              cause: info.error,
            }),
          );
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
        throw new QmpError('protocol', this.socketPath, command, `unexpected reply: ${truncate(JSON.stringify(value))}`, {
          cause: r.error,
        });
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
  waitForEvent(
    name: string,
    options: { timeoutMs?: number; predicate?: (e: QmpEvent) => boolean } = {},
  ): Promise<QmpEvent> {
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
    const id = `agent-${this.nextId++}`;
    const line = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = { command, resolve, reject, timer: undefined };
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError('timeout', this.socketPath, command, `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, p);
      this.stream.write(`${line}\n`);
    });
  }

  private onData(chunk: Buffer | string): void {
    for (const line of this.lines.push(chunk)) {
      let msg: QmpMessage;
      try {
        msg = parseQmpMessage(line);
      } catch (e) {
        this.emit(
          'protocolError',
          new QmpError('protocol', this.socketPath, undefined, e instanceof Error ? e.message : String(e), { cause: e }),
        );
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
      case 'error': {
        const key = this.pendingKey(msg.id);
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
        return;
      }
    }
  }

  /**
   * The pending entry a reply belongs to. A reply without an id (QEMU could not even read the
   * id, e.g. a JSON parse error) goes to the oldest pending command: QEMU answers in order.
   */
  private pendingKey(id: string | number | undefined): string | undefined {
    if (id !== undefined) return String(id);
    const first = this.pending.keys().next();
    return first.done ? undefined : first.value;
  }

  private onStreamClose(): void {
    if (this.closeInfo) return;
    const reason: QmpCloseInfo['reason'] = this.closeRequested ? 'client' : this.quitSent ? 'quit' : 'remote';
    const info: QmpCloseInfo = { expected: reason !== 'remote', reason, error: this.lastError };
    this.closeInfo = info;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(this.closedError(p.command, 'connection closed before the reply', info.error));
    }
    this.resolveClosed(info);
    this.emit('close', info);
  }

  private closedError(command: string | undefined, message = 'connection is closed', cause?: Error): QmpError {
    return new QmpError('closed', this.socketPath, command, message, cause ? { cause } : undefined);
  }
}

function connectError(socketPath: string, err: NodeJS.ErrnoException): QmpError {
  const code = err.code;
  const opts = { cause: err, code };
  switch (code) {
    case 'ECONNREFUSED':
      return new QmpError('refused', socketPath, undefined, 'connection refused: nothing listens on this socket (stale socket of a dead QEMU?)', opts);
    case 'ENOENT':
      return new QmpError('not-found', socketPath, undefined, 'no such socket (QEMU not started, or exited and removed it)', opts);
    case 'EAGAIN':
      return new QmpError('busy', socketPath, undefined, 'QMP socket busy: its backlog is full (another client is connected and one more waits)', opts);
    default:
      return new QmpError('connect-failed', socketPath, undefined, `cannot connect: ${err.message}`, opts);
  }
}
