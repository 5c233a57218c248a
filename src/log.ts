/** pino JSON logs on stderr; readable (pino-pretty) when stderr is a terminal. */
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';

// Loaded only for a terminal: most runs (a service, scripts, tests) log JSON and skip its cost.
const require = createRequire(import.meta.url);

/**
 * `terminal`: where readable lines go instead of fd 2 when stderr is a terminal (a command that
 * draws progress there writes them above it).
 */
export function createLogger(level: string, terminal?: NodeJS.WritableStream): Logger {
  if (process.stderr.isTTY) {
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino({ level }, pretty({ destination: terminal ?? 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level }, pino.destination({ dest: 2, sync: true }));
}
