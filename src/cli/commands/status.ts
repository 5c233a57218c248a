/** `agent status`: drift per component, desired vs observed (from the running agent, or live). */
import { Command } from 'commander';
import { buildStatus } from '../../agent/status.js';
import { statusDocument } from '../../api/documents.js';
import { fromAgentOrLive, LIVE_HELP } from '../ask-agent.js';
import { buildHost } from '../compose.js';
import { print, settings, withRegistry } from '../common.js';
import { formatStatus } from '../format.js';

export function statusCommand(): Command {
  return new Command('status')
    .description('drift per component: desired vs observed, reason, address, restarts, last event (asks the running agent; computes live when none runs)')
    .option('--json', 'print JSON')
    .option('--live', LIVE_HELP)
    .action(async (opts: { json?: boolean; live?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const report = await fromAgentOrLive(cfg, { live: opts.live, path: '/v1/status', schema: statusDocument }, () =>
        withRegistry(cfg, (r) => {
          const host = buildHost(cfg, r.meta.agentId());
          return buildStatus(r, host.runtimes, cfg, host.hostNet);
        }),
      );
      print(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report));
    });
}
