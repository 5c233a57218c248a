/**
 * `agent logs SERVICE/COMPONENT [--tail N] [--since WHEN] [-f]`: a container's logs (podman
 * logs), a VM's serial console. The console has no timestamps, so --since is refused for VMs
 * (exit 2) rather than guessed from the file's times; --tail works for both.
 */
import { Command } from 'commander';
import { COUNT_RULE, parseCount, parseSince, SINCE_RULE } from '../../duration.js';
import { ValidationError, type FieldIssue } from '../../errors.js';
import { buildHost } from '../compose.js';
import { settings, target, withRegistry } from '../common.js';

interface LogsCliOpts {
  follow?: boolean;
  tail?: string;
  since?: string;
}

/** The flags as numbers, or a ValidationError naming each bad one. */
function parseLogsFlags(opts: LogsCliOpts, now: number): { tail?: number; since?: number } {
  const issues: FieldIssue[] = [];
  const tail = opts.tail === undefined ? undefined : parseCount(opts.tail);
  if (opts.tail !== undefined && tail === undefined) issues.push({ field: '--tail', rule: `${COUNT_RULE}, got '${opts.tail}'` });
  const since = opts.since === undefined ? undefined : parseSince(opts.since, now);
  if (opts.since !== undefined && since === undefined) issues.push({ field: '--since', rule: `${SINCE_RULE}, got '${opts.since}'` });
  if (issues.length > 0) throw new ValidationError('logs flags', issues);
  return { ...(tail !== undefined ? { tail } : {}), ...(since !== undefined ? { since } : {}) };
}

export function logsCommand(): Command {
  return new Command('logs')
    .description('a workload\'s output: the serial console of a VM, the logs of a container')
    .argument('<service/component>', 'which workload')
    .option('-f, --follow', 'keep printing new output until interrupted')
    .option('-n, --tail <lines>', 'only the last N lines (0: none, then what follows with -f)')
    .option('--since <when>', 'containers only: output since a duration ago (10s, 5m, 2h) or an RFC 3339 time; a VM\'s console has no timestamps')
    .action(async (ref: string, opts: LogsCliOpts, cmd: Command) => {
      const flags = parseLogsFlags(opts, Date.now());
      const cfg = settings(cmd);
      await withRegistry(cfg, async (r) => {
        const t = target(r, ref);
        if (t.runtime === 'unikernel' && flags.since !== undefined) {
          throw new ValidationError('logs flags', [{ field: '--since', rule: `${ref} is a VM: its serial console has no timestamps, so --since cannot be honoured (use --tail N)` }]);
        }
        const rt = buildHost(cfg, r.meta.agentId()).runtimes.get(t.runtime)!;
        const abort = new AbortController();
        const onSignal = (): void => abort.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          for await (const chunk of rt.logs(t.workload, { follow: opts.follow ?? false, signal: abort.signal, ...flags })) process.stdout.write(chunk);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      });
    });
}
