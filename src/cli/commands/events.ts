/** `agent events`: the newest entries of the events log. */
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { print, settings, withRegistry } from '../common.js';
import { formatEvents } from '../format.js';

export function eventsCommand(): Command {
  return new Command('events')
    .description('the newest entries of the events log')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--service <name>', 'only this service')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; service?: string; json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new ValidationError('events', [{ field: '--limit', rule: 'must be a whole number from 1 to 100000' }]);
      await withRegistry(cfg, (r) => {
        const events = r.events.recent(limit, { service: opts.service });
        print(opts.json ? JSON.stringify(events, null, 2) : formatEvents(events));
      });
    });
}
