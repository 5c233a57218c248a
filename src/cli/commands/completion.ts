/** `agent completion bash|zsh`: a completion script made from this very program's command tree. */
import { Argument, Command } from 'commander';
import { print } from '../common.js';
import { bashScript, completionTree, zshScript } from '../completion.js';

export const SHELLS = ['bash', 'zsh'] as const;

export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script made from this CLI\'s commands and options (bash: source <(agent completion bash))')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: (typeof SHELLS)[number], _opts: unknown, cmd: Command) => {
      let root = cmd;
      while (root.parent) root = root.parent;
      const tree = completionTree(root);
      print(shell === 'bash' ? bashScript(tree) : zshScript(tree));
    });
}
