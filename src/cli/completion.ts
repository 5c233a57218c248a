/**
 * Shell completion generated from the commander program itself: its commands, subcommands,
 * options and option choices are read from the tree at the moment the script is printed, so the
 * script cannot go stale against the CLI that prints it. Pure: a Command in, a script out.
 */
import type { Command, Option } from 'commander';

/** One command of the tree, by its path of names from the root (`agent`, `agent fleet apply`). */
export interface CompletionNode {
  path: string;
  subcommands: string[];
  /** Every flag spelling (`-f`, `--file`) this command accepts, its parents' global ones included. */
  options: string[];
  /** Flags that take a value -> their choices (empty: any text, e.g. a file name). */
  values: Map<string, string[]>;
  /** Choices of its first argument, when it has them (`completion <shell>`). */
  argChoices: string[];
}

/** Spellings of one option: `-f`, `--file`. */
const spellings = (o: Option): string[] => [o.short, o.long].filter((f): f is string => Boolean(f));

/** The tree, root first. Root options are global (commander accepts them after a subcommand too). */
export function completionTree(root: Command): CompletionNode[] {
  const out: CompletionNode[] = [];
  const globals = root.options.filter((o) => !o.hidden && o.attributeName() !== 'version');
  const walk = (cmd: Command, path: string, inherited: readonly Option[]): void => {
    const help = cmd.createHelp();
    const own = help.visibleOptions(cmd);
    const all = [...own, ...inherited.filter((g) => !own.some((o) => o.long === g.long))];
    const values = new Map<string, string[]>();
    for (const o of all) if (o.required || o.optional) for (const f of spellings(o)) values.set(f, o.argChoices ?? []);
    const subs = help.visibleCommands(cmd);
    const argChoices = cmd.registeredArguments[0]?.argChoices ?? [];
    out.push({ path, subcommands: subs.flatMap((c) => [c.name(), ...c.aliases()]), options: [...new Set(all.flatMap(spellings))], values, argChoices });
    for (const c of cmd.commands) if (subs.includes(c)) walk(c, `${path} ${c.name()}`, inherited);
  };
  walk(root, root.name(), []);
  // Globals are added to subcommands only: the root lists them as its own already.
  for (const n of out.slice(1)) {
    for (const g of globals) {
      for (const f of spellings(g)) {
        if (!n.options.includes(f)) n.options.push(f);
        if ((g.required || g.optional) && !n.values.has(f)) n.values.set(f, g.argChoices ?? []);
      }
    }
  }
  return out;
}

/** Single-quoted for bash and zsh alike. */
const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * `[key]=value` lines of the tables both shells' functions read: per command path its words
 * (subcommands, else its first argument's choices), its flags, and per `path|flag` the choices of
 * a flag that takes a value.
 */
function tables(tree: CompletionNode[], shell: 'bash' | 'zsh'): { subs: string; words: string; opts: string; vals: string } {
  // zsh before 5.5 knows only the flat `key value` form for an associative array.
  const line = (k: string, v: string): string => (shell === 'bash' ? `    [${q(k)}]=${q(v)}` : `    ${q(k)} ${q(v)}`);
  return {
    subs: tree.map((n) => line(n.path, n.subcommands.join(' '))).join('\n'),
    words: tree.map((n) => line(n.path, (n.subcommands.length > 0 ? n.subcommands : n.argChoices).join(' '))).join('\n'),
    opts: tree.map((n) => line(n.path, n.options.join(' '))).join('\n'),
    vals: tree.flatMap((n) => [...n.values].map(([f, choices]) => line(`${n.path}|${f}`, choices.join(' ')))).join('\n'),
  };
}

export function bashScript(tree: CompletionNode[]): string {
  const name = tree[0]!.path;
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  const t = tables(tree, 'bash');
  return `# bash completion for ${name}, generated from its command tree by \`${name} completion bash\`.
# Load it now: source <(${name} completion bash); for good: ${name} completion bash > /etc/bash_completion.d/${name}
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cmdpath=${q(name)} i w
  # per command path: its subcommands, the words to offer, its flags; "path|flag" -> the choices of a flag that takes a value
  local -A subs=(
${t.subs}
  )
  local -A words=(
${t.words}
  )
  local -A opts=(
${t.opts}
  )
  local -A vals=(
${t.vals}
  )
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -- ]] && return 0
    if [[ $w == -* ]]; then
      [[ $w != *=* && -n \${vals["$cmdpath|$w"]+x} ]] && ((i++))
      continue
    fi
    [[ " \${subs[$cmdpath]} " == *" $w "* ]] && cmdpath="$cmdpath $w"
  done
  if [[ -n \${vals["$cmdpath|$prev"]+x} ]]; then
    # A flag's value: its choices, or readline's file names (complete -o default) for free text.
    [[ -n \${vals["$cmdpath|$prev"]} ]] && COMPREPLY=($(compgen -W "\${vals["$cmdpath|$prev"]}" -- "$cur"))
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${opts[$cmdpath]}" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "\${words[$cmdpath]}" -- "$cur"))
  fi
}
complete -o default -F ${fn} ${name}
`;
}

export function zshScript(tree: CompletionNode[]): string {
  const name = tree[0]!.path;
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const t = tables(tree, 'zsh');
  // `path` (tied to PATH) and `words` are zsh's own: the walk keeps its place in `cmdpath`.
  return `#compdef ${name}
# zsh completion for ${name}, generated from its command tree by \`${name} completion zsh\`.
# Load it now (after compinit): source <(${name} completion zsh); for good: save it as _${name} in a directory of $fpath.
${fn}() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]} cmdpath=${q(name)} i w
  local -A subs choices opts vals
  subs=(
${t.subs}
  )
  choices=(
${t.words}
  )
  opts=(
${t.opts}
  )
  vals=(
${t.vals}
  )
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    [[ $w == -- ]] && return 0
    if [[ $w == -* ]]; then
      [[ $w != *=* && -n \${vals[$cmdpath|$w]+x} ]] && ((i++))
      continue
    fi
    [[ " \${subs[$cmdpath]} " == *" $w "* ]] && cmdpath="$cmdpath $w"
  done
  if [[ -n \${vals[$cmdpath|$prev]+x} ]]; then
    if [[ -n \${vals[$cmdpath|$prev]} ]]; then compadd -- \${=vals[$cmdpath|$prev]}; else _files; fi
    return
  fi
  if [[ $cur == -* ]]; then
    compadd -- \${=opts[$cmdpath]}
  elif [[ -n \${choices[$cmdpath]} ]]; then
    compadd -- \${=choices[$cmdpath]}
  else
    _files
  fi
}
if [[ \${funcstack[1]} == ${fn} ]]; then ${fn} "$@"; else compdef ${fn} ${name}; fi
`;
}
