/**
 * `agent exec [-i] SERVICE/COMPONENT -- CMD`: a command in a workload; its exit code is ours.
 * Exit codes: the command's own (126/127 included); 125 when exec itself failed (no such
 * component or workload, not running, unreachable), like podman's; 2 for bad input and 3 for an
 * unusable registry, as in every command.
 */
import { Command } from 'commander';
import { ExecError, NotFoundError, RuntimeError } from '../../errors.js';
import { buildHost } from '../compose.js';
import { settings, target, withRegistry } from '../common.js';

export function execCommand(): Command {
  return new Command('exec')
    .description('run a command in a component\'s workload (VMs: over SSH with the pinned host key); exit code: the command\'s, or 125 when exec itself failed (not running, unreachable)')
    .option('-i, --interactive', 'pass stdin through to the command (its end closes the command\'s stdin); without it the command\'s stdin is empty')
    .argument('<service/component>', 'which workload')
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (ref: string, argv: string[], opts: { interactive?: boolean }, cmd: Command) => {
      const cfg = settings(cmd);
      const stdin = opts.interactive ? process.stdin : undefined;
      try {
        await withRegistry(cfg, async (r) => {
          const t = target(r, ref);
          const rt = buildHost(cfg, r.meta.agentId()).runtimes.get(t.runtime)!;
          process.exitCode = await rt.exec(t.workload, argv, { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b), stdin });
        });
      } catch (err) {
        // The workload cannot be had: one exit code (125), named by the component. Bad input (2)
        // and an unusable registry (3) keep the codes every command gives them.
        if (err instanceof ExecError) throw new ExecError(ref, err.detail, { cause: err });
        if (err instanceof NotFoundError || err instanceof RuntimeError) throw new ExecError(ref, err.message, { cause: err });
        throw err;
      } finally {
        // A terminal or a pipe left open on stdin would keep the process alive after the command ended.
        if (stdin) stdin.destroy();
      }
    });
}
