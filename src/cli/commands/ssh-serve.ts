/** `agent ssh-serve`: the forced command of a master's SSH key (the verb comes from SSH_ORIGINAL_COMMAND). */
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { type GlobalOpts } from '../common.js';
import { sshServeArgs } from '../ssh-serve.js';

/** `program`: builds the CLI again for the verb's argv, to run the allowed verb in this process. */
export function sshServeCommand(program: (argv: string[]) => Promise<Command>): Command {
  return new Command('ssh-serve')
    .description('the forced command of a master\'s SSH key: runs apply, status, events or plan from SSH_ORIGINAL_COMMAND')
    .action(async (_o: unknown, cmd: Command) => {
      const original = process.env.SSH_ORIGINAL_COMMAND;
      if (original === undefined) {
        throw new ValidationError('ssh-serve', [{ field: 'SSH_ORIGINAL_COMMAND', rule: 'is not set: ssh-serve is meant as a forced command (command="agent --db PATH ssh-serve" in authorized_keys)' }]);
      }
      const words = sshServeArgs(original);
      // The forced command's own global options, then the client's verb: run in this process.
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const globals = [...(g.db ? ['--db', g.db] : []), ...(g.config ? ['--config', g.config] : []), ...(g.logLevel ? ['--log-level', g.logLevel] : [])];
      const argv = ['node', 'agent', ...globals, ...words];
      await (await program(argv)).parseAsync(argv);
    });
}
