/**
 * The `agent` command line: thin. Builds the program from one file per command
 * (src/cli/commands), and turns every AgentError into a one-paragraph message on stderr and its
 * own exit code. A reader that goes away (EPIPE) ends any command quietly with 141.
 */
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS } from '../config/config.js';
import { AgentError } from '../errors.js';
import { applyCommand } from './commands/apply.js';
import { completionCommand } from './commands/completion.js';
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
import { packageVersion } from './version.js';

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
    .version(packageVersion() ?? 'unknown', '-V, --version', 'print the version of the agent')
    .showHelpAfterError()
    .exitOverride();

  const commands = [runCommand(), applyCommand(), sshServeCommand(program), deleteCommand(), planCommand(), statusCommand(), execCommand(), logsCommand(), netCommand(), eventsCommand(), doctorCommand(), fleetCommand(), completionCommand()];
  for (const c of commands) p.addCommand(inherit(c, p));

  return p;
}

/**
 * `agent status --json | head -1`: once the reader is gone our next write fails with EPIPE. git
 * and kubectl die of SIGPIPE there, which a shell reports as 141 (and `set -o pipefail` sees);
 * Node ignores SIGPIPE, so the CLI exits 141 itself, like git's own fallback, and says nothing:
 * the reader had what it wanted, and stderr may be the broken pipe too.
 */
let brokenPipeHandled = false;
function quietOnBrokenPipe(): void {
  if (brokenPipeHandled) return;
  brokenPipeHandled = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(141);
      throw err;
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  quietOnBrokenPipe();
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
