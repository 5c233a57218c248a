/** `agent run`: the reconciler, until a signal; `--once` for one pass. */
import { Command } from 'commander';
import type { Logger } from 'pino';
import { AgentLoop } from '../../agent/loop.js';
import type { AgentMetrics } from '../../agent/metrics.js';
import type { MetricsListener } from '../../api/metrics-listener.js';
import type { MetricsSink } from '../../agent/metrics-sink.js';
import { natsFileIssues, natsSettings, vmPaths, type AgentConfig, type NatsSettings } from '../../config/config.js';
import { ValidationError } from '../../errors.js';
import { claimRegistry } from '../../agent/claim.js';
import { createLogger } from '../../log.js';
import { notifyEnv, NOTIFY_VARIABLES } from '../../agent/service-notify.js';
import { ServiceWatch } from '../../agent/service-watch.js';
import { Registry } from '../../registry/index.js';
import { buildHost } from '../compose.js';
import { scopeMode } from '../../runtime/qemu/scope.js';
import { hostSystemd } from '../../runtime/qemu/scope-unit.js';
import { settings } from '../common.js';
import { ApiServer } from '../../api/server.js';
import { apiSocketPath } from '../../api/socket-path.js';
import { BootProgressView } from '../boot-progress.js';
import { LiveLines } from '../live-lines.js';

export function runCommand(): Command {
  return new Command('run')
    .description('reconcile until SIGTERM/SIGINT (workloads keep running after the agent stops), serving the local API on <registry dir>/agent.sock and Prometheus metrics on metrics_listen; one reconciler per registry: exit 5 if another runs; under systemd (NOTIFY_SOCKET): READY=1 after the first pass, STATUS= summaries, watchdog pings while passes complete')
    .option('--once', 'one reconcile pass: plan, apply, wait for the actions (VM boots waiting for SSH shown on stderr), exit (1 if any failed)')
    .action(async (opts: { once?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      // The NATS source is for the long-running agent: a one-shot pass reconciles the registry as it is.
      const nats = opts.once ? undefined : natsSettings(cfg);
      if (nats) {
        const issues = natsFileIssues(nats);
        if (issues.length > 0) throw new ValidationError('settings source.nats', issues);
      }
      // "on" where systemd is not running: said once, at start, not at each VM's launch.
      const scope = scopeMode(cfg.qemu.systemd_scope, hostSystemd, cfg.qemu.overhead_mib);
      if (!scope.on && scope.problem) throw new ValidationError('settings qemu.systemd_scope', [{ field: 'qemu.systemd_scope', rule: scope.problem }]);
      // --once is run by a person waiting for it: VM boots are told as they go (stderr, like the logs).
      const live = opts.once ? new LiveLines(process.stderr) : undefined;
      const progress = live ? new BootProgressView(live) : undefined;
      const log = createLogger(cfg.log_level, live?.aboveStream());
      // Installed before the claim is taken: a signal with no listener kills the process at once
      // (the kernel's default, not the event loop), which would leave the claim behind. One that
      // comes before the loop exists is remembered and acted on as soon as it does.
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
      // Under a notify service (systemd's NOTIFY_SOCKET): READY=1, STATUS= and watchdog pings.
      // The variables leave the agent's environment either way: a child that inherits them (podman,
      // conmon) would speak for this service.
      const sd = opts.once ? undefined : notifyEnv(process.env, process.pid);
      for (const v of NOTIFY_VARIABLES) delete process.env[v];
      // systemd's INVOCATION_ID tells podman it runs inside a service, and podman then leaves each
      // container's conmon in that service's cgroup (libpod/oci_conmon_linux.go; its own API
      // service unsets it for the same reason). Without it conmon gets its own scope
      // (machine.slice/libpod-conmon-<id>.scope), so the agent's unit holds no workload process.
      delete process.env.INVOCATION_ID;
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
      // The agent's metrics, for the long-running agent only (a one-shot pass has nobody to scrape
      // it): the TCP listener below serves them, and so can the unix-socket API (metrics.text()).
      // Loaded here, not at the top: no other command pays for prom-client.
      const metrics = opts.once ? undefined : new (await import('../../agent/metrics.js')).AgentMetrics();
      const hooks = { onVmBooted: metrics && ((seconds: number) => metrics.vmBooted(seconds)), onBootProgress: progress?.onBoot };
      // The NATS status publisher hears of each pass and action through the metrics hooks: the
      // agent layer knows nothing of NATS.
      let onPass: (() => void) | undefined;
      const sink: MetricsSink | undefined = nats
        ? {
            passDone: (r) => (metrics?.passDone(r), onPass?.()),
            actionDone: (a, rt, res) => (metrics?.actionDone(a, rt, res), onPass?.()),
            reacted: (sec) => metrics?.reacted(sec),
            vmBooted: (sec) => metrics?.vmBooted(sec),
            healthChecked: (r, sec) => metrics?.healthChecked(r, sec),
            unhealthyWorkloads: (n) => metrics?.unhealthyWorkloads(n),
          }
        : metrics;
      const service = sd && new ServiceWatch(sd, (await import('../systemd-notify.js')).systemdNotifier(sd.socket, log));
      const loop = new AgentLoop({ registry, ...buildHost(cfg, registry.meta.agentId(), log, hooks), config: cfg, log, metrics: sink, service });
      // A source no longer configured is not shown in status.
      if (!opts.once && !nats) registry.source.setState(undefined);
      if (opts.once) {
        onStop = (signal) => loop.interrupt(signal);
        if (signalled) onStop(signalled);
        try {
          const r = await loop.once();
          log.info(r, 'reconcile pass done');
          if (r.failed > 0) process.exitCode = 1;
        } finally {
          progress?.stop();
          // An interrupted pass is not "the last pass": no heartbeat stays behind it.
          if (signalled) registry.meta.delete('heartbeat');
          release();
          registry.close();
        }
        if (signalled) process.exitCode = 128 + (signalled === 'SIGINT' ? 2 : 15);
        return;
      }
      // The local API (status, plan, events, health, metrics) answers from the loop's own knowledge.
      const api = new ApiServer({ socketPath: apiSocketPath(cfg), registry, agent: loop, config: cfg, log, metrics });
      try {
        await api.listen();
      } catch (err) {
        release();
        registry.close();
        throw err;
      }
      const fromNats = nats ? await startNats(nats, cfg, registry, loop, log) : undefined;
      onPass = fromNats?.onPass;
      // Not awaited before onStop is set: a signal during the bind must still stop the agent.
      const listening = metrics ? serveMetrics(cfg, metrics, log) : Promise.resolve(undefined);
      await new Promise<void>((resolve) => {
        onStop = (signal) =>
          // The API goes first: its socket is removed before anything else ends.
          void api
            .close()
            .then(() => fromNats?.stop())
            .then(() => loop.stop(signal))
            .finally(async () => {
              await listening.then((l) => l?.close());
              release();
              registry.close();
              resolve();
            });
        loop.start();
        if (signalled) onStop(signalled);
      });
    });
}

/**
 * The TCP metrics listener on `metrics_listen` ("" = none). An address that cannot be bound is
 * logged as an error and the agent reconciles on without it: the workloads matter more than their
 * metrics, and an agent that exits on a port clash would restart into the same clash forever.
 */
async function serveMetrics(cfg: AgentConfig, metrics: AgentMetrics, log: Logger): Promise<MetricsListener | undefined> {
  if (cfg.metrics_listen === '') return undefined;
  const { startMetricsListener } = await import('../../api/metrics-listener.js');
  try {
    return await startMetricsListener(cfg.metrics_listen, metrics, log);
  } catch (err) {
    log.error({ metrics_listen: cfg.metrics_listen }, `${(err as Error).message} (the agent runs on without metrics over TCP)`);
    return undefined;
  }
}

/** The NATS source and the status publisher: loaded only when configured (no other run pays for the client). */
async function startNats(nats: NatsSettings, cfg: AgentConfig, registry: Registry, loop: AgentLoop, log: Logger): Promise<{ onPass: () => void; stop: () => Promise<void> }> {
  const [{ NatsSource }, { StatusPublisher }, { nodeSummary }, { statusReport }, { packageVersion }, os] = await Promise.all([
    import('../../nats/source.js'),
    import('../../nats/publisher.js'),
    import('../../nats/summary.js'),
    import('../../agent/status.js'),
    import('../version.js'),
    import('node:os'),
  ]);
  // Its own connection: its commits then wake the loop as any other writer's do (data_version).
  const own = Registry.open(cfg.db, { log });
  const source = new NatsSource({ settings: nats, registry: own, imagesDirs: vmPaths(cfg).imagesDirs, log: log.child({ source: 'nats' }) });
  const agentId = registry.meta.agentId();
  const capacity = { cpus: os.cpus().length || 1, memory_mib: Math.max(1, Math.floor(os.totalmem() / 1048576)) };
  const publisher = new StatusPublisher({
    node: nats.node,
    kv: () => source.kv(),
    log,
    build: () =>
      nodeSummary(statusReport(registry, loop.assessNow()), {
        node: nats.node,
        agentId,
        version: packageVersion() ?? 'unknown',
        at: new Date(),
        appliedRevision: source.appliedRevision(),
        rejected: source.rejectedList(),
        capacity,
      }),
  });
  source.start();
  publisher.start();
  return { onPass: () => publisher.passDone(), stop: async () => (await publisher.stop(), await source.stop(), own.close()) };
}
