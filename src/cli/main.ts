/**
 * The `agent` command line: thin. Builds the program from one file per command
 * (src/cli/commands), and turns every AgentError into a one-paragraph message on stderr and its
 * own exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS } from '../config/config.js';
import { AgentError } from '../errors.js';
import { applyCommand } from './commands/apply.js';
import { deleteCommand } from './commands/delete.js';
import { doctorCommand } from './commands/doctor.js';
import { eventsCommand } from './commands/events.js';
import { execCommand } from './commands/exec.js';
import { logsCommand } from './commands/logs.js';
import { netCommand } from './commands/net.js';
import { planCommand } from './commands/plan.js';
import { runCommand } from './commands/run.js';
import { sshServeCommand } from './commands/ssh-serve.js';
import { statusCommand } from './commands/status.js';
import { fleetCommand } from './fleet.js';

/**
 * A command made on its own (`new Command`) does not inherit its parent's settings as one made
 * with `p.command()` does: copy them down the tree, so a usage error anywhere reaches main() as
 * exit 2 instead of a process.exit.
 */
function inherit(c: Command, parent: Command): Command {
  c.copyInheritedSettings(parent);
  for (const sub of c.commands) inherit(sub, c);
  return c;
}

function program(): Command {
  const p = new Command('agent')
    .description('Node agent: keeps this node\'s containers and VMs converged with its SQLite registry.')
    .option('--db <path>', 'registry file (default from config, else ./var/agent.db; env AGENT_DB)')
    .option('--config <path>', 'settings file, TOML/YAML/JSON (env AGENT_CONFIG; default /etc/mcp-agent/agent.toml if present)')
    .addOption(new Option('--log-level <level>', 'log level (env AGENT_LOG_LEVEL)').choices(LOG_LEVELS))
    .showHelpAfterError()
    .exitOverride();

  const commands = [runCommand(), applyCommand(), sshServeCommand(program), deleteCommand(), planCommand(), statusCommand(), execCommand(), logsCommand(), netCommand(), eventsCommand(), doctorCommand(), fleetCommand()];
  for (const c of commands) p.addCommand(inherit(c, p));

  return p;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version are "errors" with exit code 0; usage errors were printed already.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof AgentError) {
      process.stderr.write(`agent: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`agent: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
