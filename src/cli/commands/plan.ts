/** `agent plan`: what the next reconcile would do, and why; changes nothing (from the running agent, or live). */
import { Command } from 'commander';
import { assess } from '../../agent/reconciler.js';
import { planDocument } from '../../agent/status.js';
import { planDocumentSchema } from '../../api/documents.js';
import { fromAgentOrLive, LIVE_HELP } from '../ask-agent.js';
import { buildHost } from '../compose.js';
import { print, settings, withRegistry } from '../common.js';
import { formatPlan } from '../format.js';

export function planCommand(): Command {
  return new Command('plan')
    .description('what the next reconcile would do, and why; changes nothing (asks the running agent; computes live when none runs)')
    .option('--json', 'print JSON')
    .option('--live', LIVE_HELP)
    .action(async (opts: { json?: boolean; live?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const doc = await fromAgentOrLive(cfg, { live: opts.live, path: '/v1/plan', schema: planDocumentSchema }, () =>
        withRegistry(cfg, async (r) => {
          const host = buildHost(cfg, r.meta.agentId());
          return planDocument(await assess(r, host.runtimes, cfg, host.hostNet));
        }),
      );
      print(opts.json ? JSON.stringify(doc, null, 2) : formatPlan(doc.actions));
    });
}
