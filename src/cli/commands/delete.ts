/** `agent delete SERVICE`: remove a service from the registry (the agent then stops its workloads). */
import { Command } from 'commander';
import { NotFoundError } from '../../errors.js';
import { print, settings, withRegistry } from '../common.js';

export function deleteCommand(): Command {
  return new Command('delete')
    .description('delete a service and its components from the registry (the agent then stops them)')
    .argument('<service>', 'service name')
    .action(async (service: string, _opts: unknown, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, (r) => {
        if (!r.desired.delete(service)) throw new NotFoundError(`no service named '${service}' in ${cfg.db}`);
        print(`service ${service} deleted`);
      });
    });
}
