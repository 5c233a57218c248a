/**
 * Progress on stderr, one line per thing waited on (a node, a VM): on a terminal the block of
 * lines is redrawn in place and anything else (a log line) is written above it; elsewhere (a
 * file, CI) a plain `key: text` line is printed only when a thing's text changes, so logs stay
 * short. Shared by `fleet apply --wait`, `run --once` and `apply --wait`.
 */
import { Writable } from 'node:stream';

export class LiveLines {
  private readonly lines: Map<string, string>;
  /** Lines of the block now on screen (TTY only); the cursor sits at the end of its last line. */
  private drawn = 0;
  readonly tty: boolean;

  /** `initial`: things already waited on, with their text, not printed until one changes. */
  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    initial: Array<[string, string]> = [],
  ) {
    this.tty = out.isTTY === true;
    this.lines = new Map(initial);
  }

  get size(): number {
    return this.lines.size;
  }

  set(key: string, text: string): void {
    if (this.lines.get(key) === text) return;
    this.lines.set(key, text);
    if (this.tty) this.out.write(`${this.erase()}${this.body()}`);
    else this.out.write(`${key}: ${text}\n`);
    if (this.tty) this.drawn = this.lines.size;
  }

  /** Text that is not progress (a log line, ending in a newline): above the block on a terminal. */
  above(text: string): void {
    if (!this.tty || this.drawn === 0) return void this.out.write(text);
    this.out.write(`${this.erase()}${text}${this.body()}`);
  }

  /** A stream whose writes go above the block (a logger's destination on a terminal). */
  aboveStream(): Writable {
    return new Writable({
      write: (chunk: Buffer | string, _enc, done) => {
        this.above(String(chunk));
        done();
      },
    });
  }

  /** Leaves the block as it is and moves below it: what follows starts on a line of its own. */
  finish(): void {
    if (this.tty && this.drawn > 0) this.out.write('\n');
    this.drawn = 0;
  }

  /** Back to the first column of the block's first line, erasing to the end of the screen. */
  private erase(): string {
    if (this.drawn === 0) return '';
    return `\r${this.drawn > 1 ? `\x1b[${this.drawn - 1}A` : ''}\x1b[J`;
  }

  private body(): string {
    // A pty with no size (script, CI) says 0 columns: take 80 then. One column spare: no wrap.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    return [...this.lines].map(([k, t]) => `${k}: ${t}`.slice(0, width)).join('\n');
  }
}
