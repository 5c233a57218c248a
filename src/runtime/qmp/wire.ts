/**
 * QMP's wire format, pure: newline-delimited JSON both ways. On connect QEMU sends a greeting
 * (`{"QMP": ...}`); each command carries a unique `id`, which QEMU echoes in its reply
 * (`{"return": ...}` or `{"error": {class, desc}}`); asynchronous events
 * (`{"event", "data", "timestamp"}`) can arrive between replies at any time. Anything else is
 * refused with a plain Error naming the line.
 */
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';

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

/** The reply to `query-status`. */
export interface QmpStatus {
  running: boolean;
  /** e.g. `prelaunch`, `running`, `paused`, `shutdown`, `internal-error`. */
  status: string;
}

export const StatusSchema = z.object({ running: z.boolean(), status: z.string() });

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

export const truncate = (s: string, n = 200): string => (s.length > n ? `${s.slice(0, n)}...` : s);
