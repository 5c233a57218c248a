/**
 * `agent drain`: records in the registry that this node is drained, then waits until the running
 * agent has stopped every workload (gracefully: VMs by ACPI powerdown, containers by SIGTERM, each
 * within stop_grace_seconds) or until --deadline. A plain registry write: it works with no agent
 * running, and the node stays drained across agent restarts until `agent undrain`.
 */
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { DURATION_RULE, parseDuration } from '../../duration.js';
import { print, settings, withRegistry } from '../common.js';

interface DrainCliOpts {
  deadline: string;
  wait: boolean;
}

export function drainCommand(): Command {
  return new Command('drain')
    .description('drain this node: the agent stops every workload gracefully (parallelism at a time) and starts nothing until undrain; the desired state is kept; waits until all are stopped (exit 1 naming what still runs)')
    .option('--deadline <duration>', 'how long to wait for every workload to stop (10s, 5m, 1h30m); the node stays drained either way', '5m')
    .option('--no-wait', 'only record the drain; do not wait for the workloads to stop')
    .addHelpText('after', '\nExit codes: 0 drained and every workload stopped (or --no-wait), 1 still running at the deadline or no agent running to stop them, 2 bad flag, 3 unusable registry.')
    .action(async (opts: DrainCliOpts, cmd: Command) => {
      const deadlineMs = parseDuration(opts.deadline);
      if (deadlineMs === undefined || deadlineMs <= 0) throw new ValidationError('drain flags', [{ field: '--deadline', rule: `${DURATION_RULE}, above 0, got '${opts.deadline}'` }]);
      const cfg = settings(cmd);
      const { state, already } = await withRegistry(cfg, (r) => r.drain.drain(new Date()));
      print(already ? `node already drained since ${state.since || '(unknown)'}` : `node drained at ${state.since}: the agent stops every workload and starts nothing until agent undrain`);
      if (!opts.wait) {
        const { agentLiveness } = await import('../../agent/status.js');
        const agent = await withRegistry(cfg, (r) => agentLiveness(r));
        if (!agent.running && !agent.once_in_progress) print('note: no agent is running on this registry: nothing stops the workloads until one runs (agent run)');
        return;
      }
      // Loaded only to wait: the status machinery is most of what a CLI call loads.
      const { waitDrained } = await import('../drain-wait.js');
      print(await waitDrained(cfg, deadlineMs, opts.deadline));
    });
}
