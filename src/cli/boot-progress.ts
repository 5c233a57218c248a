/**
 * VM boots told as they go, for `run --once` and `apply --wait`: "demo/vm: waiting for SSH, 2.1 s"
 * redrawn every half second on a terminal; elsewhere one line when the wait begins and one when
 * it ends. Fed by the QEMU runtime's onBootProgress hook (runtime/types.ts BootProgress).
 */
import { keyString } from '../errors.js';
import type { BootProgress } from '../runtime/types.js';
import type { LiveLines } from './live-lines.js';

const TICK_MS = 500;
const secs = (ms: number): string => `${(Math.max(0, ms) / 1000).toFixed(1)} s`;

export class BootProgressView {
  /** Boots waiting for SSH: component -> when the wait began. */
  private readonly waiting = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly live: LiveLines,
    private readonly now: () => number = Date.now,
  ) {}

  readonly onBoot = (p: BootProgress): void => {
    const key = keyString(p.key);
    if (p.phase === 'waiting') {
      this.waiting.set(key, p.since);
      this.live.set(key, this.live.tty ? `waiting for SSH, ${secs(this.now() - p.since)}` : 'waiting for SSH');
      // Ticks only on a terminal: elsewhere a line per tick is what "logs stay short" forbids.
      if (this.live.tty && !this.timer) this.timer = setInterval(() => this.tick(), TICK_MS).unref();
      return;
    }
    this.waiting.delete(key);
    this.live.set(key, p.phase === 'ready' ? `SSH ready after ${secs(this.now() - p.since)}` : `boot failed after ${secs(this.now() - p.since)}`);
    if (this.waiting.size === 0) this.stopTimer();
  };

  private tick(): void {
    for (const [key, since] of this.waiting) this.live.set(key, `waiting for SSH, ${secs(this.now() - since)}`);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** No more redraws; the cursor moves below the block. */
  stop(): void {
    this.stopTimer();
    this.live.finish();
  }
}
