/** `agent status [SERVICE[/COMPONENT]]`: drift per component, desired vs observed (from the running agent, or live). */
import { Command } from 'commander';
import { fromAgentOrLive, LIVE_HELP } from '../ask-agent.js';
import { print, settings, withRegistry } from '../common.js';
import { formatStatus } from '../format.js';
import { filterStatus, parseStatusRef, statusDrifted } from '../status-filter.js';

export function statusCommand(): Command {
  return new Command('status')
    .description('drift per component: desired vs observed, health, reason, restarts, age (--wide: address, next action, last event); asks the running agent, computes live when none runs')
    .argument('[ref]', 'only this service, or SERVICE/COMPONENT (exit 4 when nothing matches)')
    .option('--json', 'print JSON')
    .option('--wide', 'every column, nothing cut (the default table fits 120 columns)')
    .option('--check', 'exit 1 when any shown component is not in sync (for scripts; 0 when all are)')
    .option('--live', LIVE_HELP)
    .addHelpText('after', '\nExit codes: 0 ok (with --check: everything shown is in sync), 1 with --check: something is not in sync, 2 bad argument, 3 unusable registry, 4 no such service/component.')
    .action(async (ref: string | undefined, opts: { json?: boolean; wide?: boolean; check?: boolean; live?: boolean }, cmd: Command) => {
      const filter = ref === undefined ? undefined : parseStatusRef(ref); // bad input before any work
      const cfg = settings(cmd);
      const full = await fromAgentOrLive(cfg, { live: opts.live, path: '/v1/status', schema: async () => (await import('../../api/documents.js')).statusDocument }, async () => {
        // Loaded only to compute live: an answer from the agent needs none of the runtimes.
        const [{ buildStatus }, { buildHost }] = await Promise.all([import('../../agent/status.js'), import('../compose.js')]);
        return withRegistry(cfg, (r) => {
          const host = buildHost(cfg, r.meta.agentId());
          return buildStatus(r, host.runtimes, cfg, host.hostNet);
        });
      });
      const report = filter ? filterStatus(full, filter) : full;
      print(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report, { wide: opts.wide ?? false }));
      if (opts.check && statusDrifted(report)) process.exitCode = 1;
    });
}
