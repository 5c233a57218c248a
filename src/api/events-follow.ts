/**
 * GET /v1/events?follow=1: the newest `limit` events, then each event as it is written, one JSON
 * object a line (NDJSON), until the client goes away or the agent stops. The log is polled by row
 * id, so events written by any connection (the agent's own, `apply`, a master) are seen. An action
 * is written as a `pending` intent and settled later: a follower gets its row again, same id, once
 * its outcome is known.
 */
import type { ServerResponse } from 'node:http';
import type { AgentEvent, Registry } from '../registry/index.js';

export interface FollowOptions {
  registry: Registry;
  limit: number;
  service: string | undefined;
  pollMs: number;
}

/** Pending intents a follower waits to see settled, at most (older ones are let go). */
const PENDING_KEPT = 1000;

export class EventFollower {
  private lastId: number;
  private readonly pending = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly o: FollowOptions,
  ) {
    this.lastId = o.registry.events.lastId();
  }

  start(onEnd: () => void): void {
    this.res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    // The backlog, oldest first, as `events` shows it (newest last).
    this.send([...this.o.registry.events.recent(this.o.limit, { service: this.o.service })].reverse());
    this.res.on('close', () => {
      this.stop();
      onEnd();
    });
    this.schedule();
  }

  /** Ends the stream (the agent is stopping): the client sees the response end. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    if (!this.res.writableEnded) this.res.end();
  }

  private schedule(): void {
    if (this.ended) return;
    this.timer = setTimeout(() => this.poll(), this.o.pollMs);
  }

  private poll(): void {
    if (this.ended) return;
    try {
      const rows = this.o.registry.events.since(this.lastId, [...this.pending], { service: this.o.service });
      const fresh = rows.filter((e) => e.id > this.lastId || (this.pending.has(e.id) && e.outcome !== 'pending'));
      for (const e of rows) if (this.pending.has(e.id) && e.outcome !== 'pending') this.pending.delete(e.id);
      // A pending intent that was pruned from the log will never settle: let it go.
      for (const id of this.pending) if (!rows.some((e) => e.id === id)) this.pending.delete(id);
      this.send(fresh);
    } catch (err) {
      // The registry could not be read this time (busy, a disk error): try again at the next poll.
      void err;
    }
    this.schedule();
  }

  private send(events: AgentEvent[]): void {
    for (const e of events) {
      if (e.id > this.lastId) this.lastId = e.id;
      if (e.outcome === 'pending' && this.pending.size < PENDING_KEPT) this.pending.add(e.id);
      this.res.write(`${JSON.stringify(e)}\n`);
    }
  }
}
