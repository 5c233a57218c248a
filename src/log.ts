/** pino JSON logs on stderr; readable (pino-pretty) when stderr is a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export function createLogger(level: string): Logger {
  if (process.stderr.isTTY) {
    return pino({ level }, pretty({ destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level }, pino.destination({ dest: 2, sync: true }));
}
