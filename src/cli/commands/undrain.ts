/**
 * `agent undrain`: ends the node's drain in the registry. The running agent then starts what the
 * drain stopped (whatever their restart policy) and everything else the desired state asks for. A
 * plain registry write: it works with no agent running (nothing starts until one runs).
 */
import { Command } from 'commander';
import { agentLiveness } from '../../agent/status.js';
import { print, settings, withRegistry } from '../common.js';

export function undrainCommand(): Command {
  return new Command('undrain')
    .description('end the drain of this node: the agent starts again the workloads the drain stopped, and whatever else the desired state asks for')
    .action(async (_opts: unknown, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, (r) => {
        const ended = r.drain.undrain();
        print(ended ? `node undrained (drained since ${ended.since || '(unknown)'}): the agent starts its workloads again` : 'node was not drained: nothing changed');
        const agent = agentLiveness(r);
        if (ended && !agent.running && !agent.once_in_progress) print('note: no agent is running on this registry: nothing starts until one runs (agent run)');
      });
    });
}
