/** `agent plan`: what the next reconcile would do, and why; changes nothing. */
import { Command } from 'commander';
import { assess } from '../../agent/reconciler.js';
import { buildHost } from '../compose.js';
import { print, settings, withRegistry } from '../common.js';
import { actionJson, formatPlan } from '../format.js';

export function planCommand(): Command {
  return new Command('plan')
    .description('what the next reconcile would do, and why; changes nothing')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const host = buildHost(cfg, r.meta.agentId());
        const res = await assess(r, host.runtimes, cfg, host.hostNet);
        print(opts.json ? JSON.stringify({ actions: res.actions.map(actionJson) }, null, 2) : formatPlan(res.actions));
      });
    });
}
