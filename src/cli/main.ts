/**
 * The `agent` command line: thin. Builds the program from one file per command
 * (src/cli/commands), and turns every AgentError into a one-paragraph message on stderr and its
 * own exit code. A reader that goes away (EPIPE) ends any command quietly with 141.
 *
 * Only the chosen command's module is loaded: each one pulls in its own share of the agent
 * (podman, QEMU, the planner, pino, ssh2...), and loading all of them cost a CLI call about three
 * times Node's own start. The others stand in as stubs made from COMMANDS, so `agent --help` lists
 * them all without loading any (test/pure/cli-commands.test.ts keeps COMMANDS true to the modules).
 */
import { Command, CommanderError, Help, Option } from 'commander';
import { LOG_LEVELS } from '../config/levels.js';
import { AgentError } from '../errors.js';
import { quietOnBrokenPipe } from './output.js';
import { packageVersion } from './version.js';

export interface CommandEntry {
  /** How `agent --help` shows it (commander's term: name, `[options]`, arguments). */
  term: string;
  description: string;
  load: () => Promise<Command>;
  /** The command reads the whole command tree (completion): every command is loaded for it. */
  needsAll?: boolean;
  /** What the command may import later (the agent's schemas, the live path): loaded when the build makes its code cache. */
  later?: () => Promise<unknown>;
}

/** Every top-level command, in help order. `program` is for ssh-serve, which runs a verb in-process. */
export const COMMANDS: Record<string, CommandEntry> = {
  run: {
    term: 'run [options]',
    description: 'reconcile until SIGTERM/SIGINT (workloads keep running after the agent stops), serving the local API on <registry dir>/agent.sock and Prometheus metrics on metrics_listen; one reconciler per registry: exit 5 if another runs; under systemd (NOTIFY_SOCKET): READY=1 after the first pass, STATUS= summaries, watchdog pings while passes complete',
    load: async () => (await import('./commands/run.js')).runCommand(),
  },
  apply: {
    term: 'apply [options]',
    description: 'validate manifests and write them to the registry in one transaction',
    load: async () => (await import('./commands/apply.js')).applyCommand(),
  },
  'ssh-serve': {
    term: 'ssh-serve',
    description: 'the forced command of a master\'s SSH key: runs apply, status, events or plan from SSH_ORIGINAL_COMMAND',
    load: async () => (await import('./commands/ssh-serve.js')).sshServeCommand(program),
  },
  delete: {
    term: 'delete <service>',
    description: 'delete a service and its components from the registry (the agent then stops them)',
    load: async () => (await import('./commands/delete.js')).deleteCommand(),
  },
  drain: {
    term: 'drain [options]',
    description: 'drain this node: the agent stops every workload gracefully (parallelism at a time) and starts nothing until undrain; the desired state is kept; waits until all are stopped (exit 1 naming what still runs)',
    load: async () => (await import('./commands/drain.js')).drainCommand(),
    later: () => Promise.all([import('./drain-wait.js'), import('../agent/status.js'), import('./compose.js'), import('../api/documents.js')]),
  },
  undrain: {
    term: 'undrain',
    description: 'end the drain of this node: the agent starts again the workloads the drain stopped, and whatever else the desired state asks for',
    load: async () => (await import('./commands/undrain.js')).undrainCommand(),
  },
  plan: {
    term: 'plan [options]',
    description: 'what the next reconcile would do, and why; what a backoff holds back and until when; runtimes that cannot list; changes nothing (asks the running agent; computes live when none runs)',
    load: async () => (await import('./commands/plan.js')).planCommand(),
    later: () => Promise.all([import('../agent/reconciler.js'), import('./compose.js'), import('../api/documents.js')]),
  },
  status: {
    term: 'status [options] [ref]',
    description: 'drift per component: desired vs observed, health, reason, restarts, age (--wide: address, next action, last event); asks the running agent, computes live when none runs',
    load: async () => (await import('./commands/status.js')).statusCommand(),
    later: () => Promise.all([import('../agent/status.js'), import('./compose.js'), import('../api/documents.js')]),
  },
  exec: {
    term: 'exec [options] <service/component> <command...>',
    description: 'run a command in a component\'s workload (VMs: over SSH with the pinned host key); exit code: the command\'s, or 125 when exec itself failed (not running, unreachable)',
    load: async () => (await import('./commands/exec.js')).execCommand(),
  },
  logs: {
    term: 'logs [options] <service/component>',
    description: 'a workload\'s output: the serial console of a VM, the logs of a container',
    load: async () => (await import('./commands/logs.js')).logsCommand(),
  },
  net: {
    term: 'net',
    description: 'the host-only bridge for VMs and its isolation rules (nftables)',
    load: async () => (await import('./commands/net.js')).netCommand(),
  },
  events: {
    term: 'events [options]',
    description: 'the newest entries of the events log (asks the running agent; reads the registry when none runs)',
    load: async () => (await import('./commands/events.js')).eventsCommand(),
    later: () => import('../api/documents.js'),
  },
  doctor: {
    term: 'doctor [options]',
    description: 'check this host for the agent: node, registry, podman (a real throwaway container), ulimits, qemu, accelerator, nft/ip, bridge, images, disk, systemd unit (KillMode, Restart, RestartPreventExitStatus); exit 1 if any check fails (warnings do not)',
    load: async () => (await import('./commands/doctor.js')).doctorCommand(),
  },
  fleet: {
    term: 'fleet',
    description: 'the master\'s side: push desired state to nodes over SSH (pinned host keys) or through a NATS JetStream KV bucket (--nats), and see their drift',
    load: async () => (await import('./fleet.js')).fleetCommand(),
  },
  completion: {
    term: 'completion <shell>',
    description: 'print a shell completion script made from this CLI\'s commands and options (bash: source <(agent completion bash))',
    load: async () => (await import('./commands/completion.js')).completionCommand(),
    needsAll: true,
  },
};

/** Global options that take a value: the word after them is not the command. */
const VALUED_GLOBALS = new Set(['--db', '--config', '--log-level']);

/**
 * The command `argv` names (`agent [globals] NAME ...` or `agent help NAME`), or undefined when it
 * names none (top-level help, a usage error): then every command is a stub and commander answers.
 */
export function chosenCommand(argv: string[]): string | undefined {
  let helpWord = false;
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (VALUED_GLOBALS.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    if (a === 'help' && !helpWord) {
      helpWord = true;
      continue;
    }
    return Object.hasOwn(COMMANDS, a) ? a : undefined;
  }
  return undefined;
}

/** Commands known by their help line only; never run (chosenCommand() picks the real one). */
const stubs = new WeakSet<Command>();

function stub(name: string, entry: CommandEntry): Command {
  const c = new Command(name).description(entry.description);
  stubs.add(c);
  return c;
}

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

/** The program for `argv`: the chosen command loaded (all of them with `all`), the others stubs. */
export async function program(argv: string[], opts: { all?: boolean } = {}): Promise<Command> {
  const p = new Command('agent')
    .description('Node agent: keeps this node\'s containers and VMs converged with its SQLite registry.')
    .option('--db <path>', 'registry file (default from config, else ./var/agent.db; env AGENT_DB)')
    .option('--config <path>', 'settings file, TOML/YAML/JSON (env AGENT_CONFIG; default /etc/mcp-agent/agent.toml if present)')
    .addOption(new Option('--log-level <level>', 'log level (env AGENT_LOG_LEVEL)').choices(LOG_LEVELS))
    .version(packageVersion() ?? 'unknown', '-V, --version', 'print the version of the agent')
    .showHelpAfterError()
    .exitOverride();
  // Stubs show the real command's term, so the list reads as if every command were loaded.
  p.configureHelp({
    subcommandTerm(this: Help, c: Command): string {
      return stubs.has(c) ? COMMANDS[c.name()]!.term : Help.prototype.subcommandTerm.call(this, c);
    },
  });

  const chosen = chosenCommand(argv);
  const all = opts.all || (chosen !== undefined && COMMANDS[chosen]!.needsAll);
  for (const [name, entry] of Object.entries(COMMANDS)) {
    const c = all || name === chosen ? await entry.load() : stub(name, entry);
    p.addCommand(inherit(c, p));
  }
  return p;
}

export async function main(argv: string[]): Promise<number> {
  quietOnBrokenPipe();
  try {
    await (await program(argv)).parseAsync(argv);
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
