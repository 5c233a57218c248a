/**
 * `agent doctor`: checks that this host can run the agent (Node, registry, podman with a real
 * throwaway container, ulimits, QEMU, accelerator, nft/ip, bridge, images, disk), each ok / warn /
 * fail with a fix. Exit 1 when any check fails; warnings do not. The adapters are built here (the
 * composition root's job) and handed to src/doctor, which never builds them itself.
 */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { vmPaths, type AgentConfig } from '../../config/config.js';
import { desiredReader } from '../../doctor/checks/context.js';
import { buildReport, exitCodeOf, formatReport, reportJson } from '../../doctor/report.js';
import { PROBE_IMAGE } from '../../doctor/rules.js';
import { runChecks } from '../../doctor/run.js';
import { buildHost } from '../compose.js';
import { print, settings } from '../common.js';

/**
 * The settings the doctor's adapters run with: the CLI path for podman (no API service), and
 * shorter bounds than an agent's, so a hanging tool is reported within a minute or so.
 */
function doctorSettings(cfg: AgentConfig): AgentConfig {
  return {
    ...cfg,
    podman: { ...cfg.podman, api: 'off', list_timeout_seconds: Math.min(cfg.podman.list_timeout_seconds, 10), timeout_seconds: Math.min(cfg.podman.timeout_seconds, 20) },
  };
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check this host for the agent: node, registry, podman (a real throwaway container), ulimits, qemu, accelerator, nft/ip, bridge, images, disk, systemd unit (KillMode, Restart, RestartPreventExitStatus); exit 1 if any check fails (warnings do not)')
    .option('--json', 'print JSON: {ok, summary, checks: [{name, status, detail, fix, facts}]}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cfg = doctorSettings(settings(cmd));
      const suffix = `${process.pid}-${randomBytes(3).toString('hex')}`;
      const probeAgentId = `doctor-${suffix}`;
      const host = buildHost(cfg, probeAgentId);
      const report = buildReport(
        await runChecks({
          cfg,
          paths: vmPaths(cfg),
          containers: host.runtimes.get('container')!,
          hostNet: host.hostNet,
          probeName: `agent-doctor-${suffix}`,
          probeAgentId,
          probeImage: PROBE_IMAGE,
          desired: desiredReader(cfg.db),
        }),
      );
      print(opts.json ? reportJson(report) : formatReport(report));
      process.exitCode = exitCodeOf(report);
    });
}
