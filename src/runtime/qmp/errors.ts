/**
 * The errors of the QMP client: one class, a kind per way a connection or a command fails, so a
 * caller can tell "someone else holds QMP" (greeting-timeout) from "QEMU is gone" (refused,
 * closed) without parsing messages.
 */
import { AgentError } from '../../errors.js';

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
