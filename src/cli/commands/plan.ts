/** `agent plan`: what the next reconcile would do, and why; changes nothing (from the running agent, or live). */
import { Command } from 'commander';
import { planDocument, planPending } from '../../agent/plan-report.js';
import { fromAgentOrLive, LIVE_HELP } from '../ask-agent.js';
import { print, settings, withRegistry } from '../common.js';
import { formatPlan } from '../format.js';

export function planCommand(): Command {
  return new Command('plan')
    .description('what the next reconcile would do, and why; what a backoff holds back and until when; runtimes that cannot list; changes nothing (asks the running agent; computes live when none runs)')
    .option('--json', 'print JSON: actions, held (with due_at), not_admitted (starts that do not fit the host), unknown_runtimes')
    .option('--wide', 'reasons whole (the default table fits 120 columns)')
    .option('--check', 'exit 1 when any action is pending: due, held by a backoff, not admitted (does not fit the host), or undecidable because a runtime cannot list (for scripts)')
    .option('--live', LIVE_HELP)
    .addHelpText('after', '\nExit codes: 0 ok (with --check: nothing pending), 1 with --check: an action is pending, 3 unusable registry.')
    .action(async (opts: { json?: boolean; wide?: boolean; check?: boolean; live?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const doc = await fromAgentOrLive(cfg, { live: opts.live, path: '/v1/plan', schema: async () => (await import('../../api/documents.js')).planDocumentSchema }, async () => {
        // Loaded only to compute live: an answer from the agent needs none of the runtimes.
        const [{ assess }, { buildHost }] = await Promise.all([import('../../agent/reconciler.js'), import('../compose.js')]);
        return withRegistry(cfg, async (r) => {
          const host = buildHost(cfg, r.meta.agentId());
          return planDocument(await assess(r, host.runtimes, cfg, host.hostNet));
        });
      });
      print(opts.json ? JSON.stringify(doc, null, 2) : formatPlan(doc, { wide: opts.wide ?? false }));
      if (opts.check && planPending(doc)) process.exitCode = 1;
    });
}
