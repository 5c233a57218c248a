/** `agent logs SERVICE/COMPONENT`: a container's logs, a VM's serial console. */
import { Command } from 'commander';
import { buildHost } from '../compose.js';
import { settings, target, withRegistry } from '../common.js';

export function logsCommand(): Command {
  return new Command('logs')
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
}
