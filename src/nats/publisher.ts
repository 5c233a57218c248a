/**
 * Writes status.<node> to the fleet's bucket: after a reconcile pass whose summary differs from
 * the last one written, and at least every HEARTBEAT_SECONDS (a master calls a node stale after
 * STALE_AFTER_SECONDS without one). While NATS is away nothing is written and nothing queues: the
 * next heartbeat after the reconnect says what is true then.
 */
import type { Logger } from 'pino';
import type { KV } from 'nats';
import { statusKey } from './keys.js';
import { HEARTBEAT_SECONDS, sameSummary, type NodeSummary } from './summary.js';

export interface PublisherOptions {
  node: string;
  /** The bucket while connected and bound; undefined otherwise. */
  kv: () => KV | undefined;
  /** The summary now (built from the running loop's assessment). */
  build: () => NodeSummary;
  log: Logger;
  heartbeatMs?: number;
}

export class StatusPublisher {
  private last: NodeSummary | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> = Promise.resolve();
  /** A publish is queued and has not begun building its summary. */
  private queued = false;

  constructor(private readonly o: PublisherOptions) {}

  start(): void {
    this.timer = setInterval(() => this.publish(true), this.o.heartbeatMs ?? HEARTBEAT_SECONDS * 1000);
    this.publish(true);
  }

  /** A pass ended: publish when what it left differs from what was last written. */
  passDone(): void {
    this.publish(false);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.busy;
  }

  private publish(heartbeat: boolean): void {
    // A burst of passes and actions (hundreds of containers starting) queues one build, not one
    // each: the queued one is built when its turn comes, so it sees all of them.
    if (this.queued && !heartbeat) return;
    this.queued = true;
    // One write at a time, in order: a slow put never lets an older summary land after a newer one.
    this.busy = this.busy.then(async () => {
      this.queued = false;
      const kv = this.o.kv();
      if (!kv) return;
      let s: NodeSummary;
      try {
        s = this.o.build();
      } catch (err) {
        return void this.o.log.warn({ err: (err as Error).message }, 'cannot build the node summary');
      }
      if (!heartbeat && this.last && sameSummary(this.last, s)) return;
      try {
        await kv.put(statusKey(this.o.node), JSON.stringify(s));
        this.last = s;
      } catch (err) {
        this.o.log.debug({ err: (err as Error).message }, 'status not published (NATS away?)');
      }
    });
  }
}
