/** `agent exec SERVICE/COMPONENT -- CMD`: a command in a workload; its exit code is ours. */
import { Command } from 'commander';
import { buildHost } from '../compose.js';
import { settings, target, withRegistry } from '../common.js';

export function execCommand(): Command {
  return new Command('exec')
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
}
