/**
 * The `agent` command line: thin. Parses, loads settings, calls the agent, prints a table or
 * JSON. Every AgentError becomes a one-paragraph message on stderr and its own exit code.
 */
import { readFileSync, statSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { AgentLoop } from '../agent/loop.js';
import { claimRegistry } from '../agent/claim.js';
import { assess } from '../agent/reconciler.js';
import { buildStatus } from '../agent/status.js';
import { bridgeSettings, loadConfig, LOG_LEVELS, vmPaths, type AgentConfig } from '../config/config.js';
import { resolveBootFiles } from '../agent/images.js';
import { workloadName } from '../identity.js';
import type { FieldIssue } from '../errors.js';
import { AgentError, NotFoundError, ValidationError } from '../errors.js';
import { createLogger } from '../log.js';
import { loadManifestDir, loadManifestFile, loadManifestStdin, type ManifestFormat } from '../manifest/load.js';
import type { ServiceSpec } from '../manifest/schema.js';
import { Registry } from '../registry/index.js';
import { planAgainst, type ApplyResult } from '../registry/desired.js';
import { ORIGINS, type Origin } from '../manifest/diff.js';
import { sshServeArgs } from './ssh-serve.js';
import { buildHost, buildHostNet } from './compose.js';
import { actionJson, formatEvents, formatPlan, formatStatus } from './format.js';
import { fleetCommand } from './fleet.js';

interface GlobalOpts {
  db?: string;
  config?: string;
  logLevel?: string;
}

function settings(cmd: Command): AgentConfig {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  return loadConfig({ configPath: g.config, env: process.env, flags: { db: g.db, logLevel: g.logLevel }, cwd: process.cwd() });
}

/** Only `apply` (and `run`) create a missing registry: elsewhere a missing file is a wrong path. */
function withRegistry<T>(cfg: AgentConfig, fn: (r: Registry) => Promise<T> | T, opts: { create?: boolean; readonlyAsIs?: boolean } = {}): Promise<T> {
  const registry = Registry.open(cfg.db, { create: opts.create ?? false, ...(opts.readonlyAsIs ? { readonly: true, asIs: true } : {}) });
  return Promise.resolve()
    .then(() => fn(registry))
    .finally(() => registry.close());
}

const print = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

function readManifests(file: string, format: ManifestFormat | undefined): ServiceSpec[] {
  if (file === '-') return loadManifestStdin(readFileSync(0, 'utf8'), format);
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch (err) {
    throw new ValidationError(file, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  return isDir ? loadManifestDir(file) : [loadManifestFile(file)];
}

interface ApplyCliOpts {
  file: string;
  prune?: boolean;
  allowEmpty?: boolean;
  format?: ManifestFormat;
  origin: Origin;
  dryRun?: boolean;
  json?: boolean;
}

/** One line per service (or the JSON the master's `fleet` reads); `note` heads a dry run. */
function printApply(res: ApplyResult, specs: ServiceSpec[], opts: ApplyCliOpts, note?: string): void {
  if (opts.json) return print(JSON.stringify({ ...res, dry_run: opts.dryRun ?? false }));
  if (note) print(note);
  const count = (name: string): string => {
    const n = specs.find((s) => s.name === name)?.components.length ?? 0;
    return `${n} component${n === 1 ? '' : 's'}`;
  };
  for (const n of res.created) print(`service ${n} created (${count(n)})`);
  for (const u of res.updated) print(`service ${u.name} updated (${count(u.name)}): ${u.changes.join('; ')}`);
  for (const n of res.unchanged) print(`service ${n} unchanged`);
  for (const n of res.pruned) print(`service ${n} deleted (pruned)`);
}

/** VM boot files must lie inside this node's allowed image directories (a node setting). */
function checkBootFiles(specs: ServiceSpec[], cfg: AgentConfig): void {
  const dirs = vmPaths(cfg).imagesDirs;
  for (const s of specs) {
    const issues: FieldIssue[] = [];
    s.components.forEach((c, i) => {
      if (c.runtime !== 'unikernel') return;
      for (const issue of resolveBootFiles(c, dirs).issues) issues.push({ field: `components[${i}].${issue.field}`, rule: issue.rule });
    });
    if (issues.length > 0) throw new ValidationError(`service ${s.name}`, issues);
  }
}

/** `service/component` to the component's runtime and workload name, from the registry. */
function target(r: Registry, ref: string): { runtime: 'container' | 'unikernel'; workload: string } {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(ref);
  if (!m) throw new ValidationError('target', [{ field: 'SERVICE/COMPONENT', rule: `must look like web/api, got '${ref}'` }]);
  const c = r.desired.read().components.find((x) => x.service === m[1] && x.component === m[2]);
  if (!c) throw new NotFoundError(`no component ${ref} in the registry`);
  if (!c.valid) throw new NotFoundError(`component ${ref} is invalid in the registry: ${c.error}`);
  return { runtime: c.spec.runtime, workload: workloadName({ service: c.service, component: c.component }) };
}

function program(): Command {
  const p = new Command('agent')
    .description('Node agent: keeps this node\'s containers and VMs converged with its SQLite registry.')
    .option('--db <path>', 'registry file (default from config, else ./var/agent.db; env AGENT_DB)')
    .option('--config <path>', 'settings file, TOML/YAML/JSON (env AGENT_CONFIG; default /etc/mcp-agent/agent.toml if present)')
    .addOption(new Option('--log-level <level>', 'log level (env AGENT_LOG_LEVEL)').choices(LOG_LEVELS))
    .showHelpAfterError()
    .exitOverride();

  p.command('run')
    .description('reconcile until SIGTERM/SIGINT (workloads keep running after the agent stops); one reconciler per registry: exit 5 if another runs')
    .option('--once', 'one reconcile pass: plan, apply, wait for the actions, exit (1 if any failed)')
    .action(async (opts: { once?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const log = createLogger(cfg.log_level);
      const registry = Registry.open(cfg.db, { create: true, log });
      let release: () => void;
      try {
        release = claimRegistry(registry, opts.once ? 'run --once' : 'run');
        // We hold the claim, so whoever left intents open has ended: say so in the log.
        const interrupted = registry.events.interruptPending();
        if (interrupted > 0) log.warn({ interrupted }, 'actions left under way by an agent that ended are marked interrupted; this pass sees what is true now');
      } catch (err) {
        registry.close();
        throw err;
      }
      const loop = new AgentLoop({ registry, ...buildHost(cfg, registry.meta.agentId(), log), config: cfg, log });
      // Both modes stop the same way on SIGINT/SIGTERM: nothing new is dispatched, VM starts still
      // booting are rolled back, other actions finish, the claim is given back. A second signal
      // changes nothing of that (it never skips the cleanup). Listeners stay installed (not
      // `once`): execa's signal-exit re-raises a signal that has no other listener left, which
      // would kill the agent half-way through its clean stop.
      let signalled: NodeJS.Signals | undefined;
      let onStop: (signal: NodeJS.Signals) => void = () => undefined;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (signalled) return void log.warn({ signal }, 'already stopping: rolling back what is under way, then exiting');
        signalled = signal;
        log.info({ signal }, 'stopping');
        onStop(signal);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      if (opts.once) {
        onStop = (signal) => loop.interrupt(signal);
        try {
          const r = await loop.once();
          log.info(r, 'reconcile pass done');
          if (r.failed > 0) process.exitCode = 1;
        } finally {
          // An interrupted pass is not "the last pass": no heartbeat stays behind it.
          if (signalled) registry.meta.delete('heartbeat');
          release();
          registry.close();
        }
        if (signalled) process.exitCode = 128 + (signalled === 'SIGINT' ? 2 : 15);
        return;
      }
      await new Promise<void>((resolve) => {
        onStop = (signal) =>
          void loop.stop(signal).finally(() => {
            release();
            registry.close();
            resolve();
          });
        loop.start();
      });
    });

  p.command('apply')
    .description('validate manifests and write them to the registry in one transaction')
    .requiredOption('-f, --file <path>', 'a manifest (.toml, .yaml, .yml, .json), a directory of them, or - for stdin (one service, or a JSON/YAML array of them)')
    .option('--prune', 'with a directory or stdin: delete every service not in the set (with --origin master: only services a master sent)')
    .option('--allow-empty', 'with --prune: accept an empty set (deletes every service it may prune)')
    .addOption(new Option('--format <format>', 'format of stdin').choices(['toml', 'yaml', 'json']))
    .addOption(new Option('--origin <origin>', 'who applies: recorded per service; a master\'s prune spares local services').choices(ORIGINS).default('local'))
    .option('--dry-run', 'print what would change and write nothing (not even a new registry)')
    .option('--json', 'print JSON')
    .action(async (opts: ApplyCliOpts, cmd: Command) => {
      const cfg = settings(cmd);
      if (opts.prune && opts.file !== '-' && !statSync(opts.file, { throwIfNoEntry: false })?.isDirectory()) {
        throw new ValidationError('apply --prune', [{ field: '--file', rule: 'must be a directory with --prune, or - for stdin (the whole desired state)' }]);
      }
      const specs = readManifests(opts.file, opts.format); // validated before the registry is opened
      checkBootFiles(specs, cfg);
      if (opts.prune && specs.length === 0 && !opts.allowEmpty) {
        // An empty directory is far more often a mistake (wrong path, failed sync) than intent.
        const where = opts.file === '-' ? 'stdin' : opts.file;
        throw new ValidationError('apply --prune', [{ field: '--file', rule: `${where} holds no manifests; pass --allow-empty to delete every service it may prune` }]);
      }
      const applyOpts = { prune: opts.prune ?? false, origin: opts.origin };
      if (opts.dryRun) {
        const exists = statSync(cfg.db, { throwIfNoEntry: false }) !== undefined;
        const res = exists ? await withRegistry(cfg, (r) => r.desired.plan(specs, applyOpts), { readonlyAsIs: true }) : planAgainst([], specs, applyOpts);
        printApply(res, specs, opts, exists ? `dry run: nothing written to ${cfg.db}` : `dry run: ${cfg.db} does not exist; apply would create it`);
        return;
      }
      const res = await withRegistry(cfg, (r) => r.desired.apply(specs, applyOpts), { create: true });
      printApply(res, specs, opts);
    });

  p.command('ssh-serve')
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
      await program().parseAsync(['node', 'agent', ...globals, ...words]);
    });

  p.command('delete')
    .description('delete a service and its components from the registry (the agent then stops them)')
    .argument('<service>', 'service name')
    .action(async (service: string, _opts: unknown, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, (r) => {
        if (!r.desired.delete(service)) throw new NotFoundError(`no service named '${service}' in ${cfg.db}`);
        print(`service ${service} deleted`);
      });
    });

  p.command('plan')
    .description('what the next reconcile would do, and why; changes nothing')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const host = buildHost(cfg, r.meta.agentId());
        const res = await assess(r, host.runtimes, cfg, host.hostNet);
        print(opts.json ? JSON.stringify({ actions: res.actions.map(actionJson) }, null, 2) : formatPlan(res.actions));
      });
    });

  p.command('status')
    .description('drift per component: desired vs observed, reason, address, restarts, last event')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const host = buildHost(cfg, r.meta.agentId());
        const report = await buildStatus(r, host.runtimes, cfg, host.hostNet);
        print(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report));
      });
    });

  p.command('exec')
    .description('run a command in a component\'s workload (VMs: over SSH with the pinned host key); its exit code is ours')
    .argument('<service/component>', 'which workload')
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (ref: string, argv: string[], _opts: unknown, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const t = target(r, ref);
        const rt = buildHost(cfg, r.meta.agentId()).runtimes.get(t.runtime)!;
        process.exitCode = await rt.exec(t.workload, argv, { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b) });
      });
    });

  p.command('logs')
    .description('a workload\'s output: the serial console of a VM, the logs of a container')
    .argument('<service/component>', 'which workload')
    .option('-f, --follow', 'keep printing new output until interrupted')
    .action(async (ref: string, opts: { follow?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const t = target(r, ref);
        const rt = buildHost(cfg, r.meta.agentId()).runtimes.get(t.runtime)!;
        const abort = new AbortController();
        const onSignal = (): void => abort.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          for await (const chunk of rt.logs(t.workload, { follow: opts.follow ?? false, signal: abort.signal })) process.stdout.write(chunk);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      });
    });

  const net = p.command('net').description('the host-only bridge for VMs and its isolation rules (nftables)');
  net
    .command('up')
    .description('create (idempotently) the bridge with the gateway address and load the isolation rules')
    .action(async (_o: unknown, cmd: Command) => {
      for (const line of await buildHostNet().up(bridgeSettings(settings(cmd)))) print(line);
    });
  net
    .command('down')
    .description('remove the isolation rules, and the bridge if the agent created it')
    .action(async (_o: unknown, cmd: Command) => {
      for (const line of await buildHostNet().down(bridgeSettings(settings(cmd)))) print(line);
    });
  net
    .command('status')
    .description('whether the bridge exists, the isolation rules are in place, and whose VMs are on it (exit 1 when the rules are missing or several agents share it)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const s = await buildHostNet().status(bridgeSettings(settings(cmd)));
      if (opts.json) return print(JSON.stringify(s, null, 2));
      const b = s.bridge;
      print(`bridge: ${b.name} ${b.present ? `present${b.created_by_agent ? ' (created by the agent)' : ''}, ${b.up ? 'up' : 'down'}, ${b.address ?? 'no address'}` : 'absent (VMs with network auto use SLIRP)'}`);
      print(`rules:  ${s.rules.detail}`);
      const agents = Object.entries(s.agents);
      if (b.present) print(`VMs:    ${agents.length === 0 ? 'none' : agents.map(([id, n]) => `${n} of agent ${id}`).join(', ')}${agents.length > 1 ? ' (shared by several agents: their addresses may collide; agents keep new VMs off it)' : ''}`);
      if (b.present && (!s.rules.loaded || agents.length > 1)) process.exitCode = 1;
    });

  p.command('events')
    .description('the newest entries of the events log')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--service <name>', 'only this service')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; service?: string; json?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new ValidationError('events', [{ field: '--limit', rule: 'must be a whole number from 1 to 100000' }]);
      await withRegistry(cfg, (r) => {
        const events = r.events.recent(limit, { service: opts.service });
        print(opts.json ? JSON.stringify(events, null, 2) : formatEvents(events));
      });
    });

  p.addCommand(fleetCommand());

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
