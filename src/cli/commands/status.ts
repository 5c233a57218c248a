/** `agent status`: drift per component, desired vs observed. */
import { Command } from 'commander';
import { buildStatus } from '../../agent/status.js';
import { buildHost } from '../compose.js';
import { print, settings, withRegistry } from '../common.js';
import { formatStatus } from '../format.js';

export function statusCommand(): Command {
  return new Command('status')
    .description('drift per component: desired vs observed, reason, address, restarts, last event')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const host = buildHost(cfg, r.meta.agentId());
        const report = await buildStatus(r, host.runtimes, cfg, host.hostNet);
        print(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report));
      });
    });
}
