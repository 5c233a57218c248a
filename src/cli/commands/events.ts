/** `agent events`: the newest entries of the events log (from the running agent, or the registry); `--follow` streams new ones from the agent. */
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { followAgent } from '../../api/client.js';
import type { AgentEvent } from '../../registry/index.js';
import { agentTarget, fromAgentOrLive } from '../ask-agent.js';
import { print, settings, withRegistry } from '../common.js';
import { formatEvents } from '../format.js';

interface EventsOpts {
  limit: string;
  service?: string;
  json?: boolean;
  live?: boolean;
  follow?: boolean;
}

/** One event as one line, for a stream (a table cannot be aligned before the rows are known). */
const eventLine = (e: AgentEvent): string =>
  [e.at, e.service ? `${e.service}/${e.component}` : (e.workload ?? '-'), e.action, e.outcome, e.reason || '-', e.message || '-'].join('  ');

export function eventsCommand(): Command {
  return new Command('events')
    .description('the newest entries of the events log (asks the running agent; reads the registry when none runs)')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--service <name>', 'only this service')
    .option('--json', 'print JSON (with --follow: one JSON object a line)')
    .option('-f, --follow', 'then print each new event as it is written, until interrupted (needs a running agent); an action shows twice: under way, then settled')
    .option('--live', 'read the registry directly even when an agent runs')
    .action(async (opts: EventsOpts, cmd: Command) => {
      const cfg = settings(cmd);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new ValidationError('events', [{ field: '--limit', rule: 'must be a whole number from 1 to 100000' }]);
      if (opts.follow && opts.live) throw new ValidationError('events', [{ field: '--follow', rule: 'streams from the running agent: it cannot be used with --live' }]);
      const query = new URLSearchParams({ limit: String(limit), ...(opts.service ? { service: opts.service } : {}) });
      if (opts.follow) {
        query.set('follow', '1');
        const abort = new AbortController();
        const onSignal = (): void => abort.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const { eventDocument } = await import('../../api/documents.js');
          await followAgent(agentTarget(cfg), `/v1/events?${query}`, eventDocument, (e) => print(opts.json ? JSON.stringify(e) : eventLine(e)), abort.signal);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        return;
      }
      const events = await fromAgentOrLive(cfg, { live: opts.live, path: `/v1/events?${query}`, schema: async () => (await import('../../api/documents.js')).eventsDocument }, () =>
        withRegistry(cfg, (r) => r.events.recent(limit, { service: opts.service })),
      );
      print(opts.json ? JSON.stringify(events, null, 2) : formatEvents(events));
    });
}
