/**
 * `agent ssh-serve`: the forced command of a master's key (`command="agent --db X ssh-serve"` in
 * authorized_keys). sshd hands the client's requested command over as one string in
 * SSH_ORIGINAL_COMMAND; this turns it into an argument vector the agent runs in-process.
 * Invariant: nothing but the verbs apply, status, events and plan runs, with the forced
 * command's own global options; the string is split, never given to a shell.
 */
import { ValidationError } from '../errors.js';

export const SSH_SERVE_VERBS = ['apply', 'status', 'events', 'plan'] as const;

/** Global options only the forced command may set: a client choosing them would pick the registry. */
const GLOBAL_OPTIONS = ['--db', '--config', '--log-level'];

/** Shell syntax that would run or redirect something else: refused outside quotes. */
const SHELL_METACHARACTERS = new Set([';', '|', '&', '$', '`', '<', '>', '\n']);

const refuse = (rule: string): ValidationError => new ValidationError('SSH_ORIGINAL_COMMAND', [{ field: '(command)', rule }]);

/**
 * Splits a command line into words as a POSIX shell would (single quotes literal, double quotes
 * with \" \\ \$ \` escapes, backslash escapes outside quotes), with no expansion and no globbing.
 * A metacharacter outside quotes (;|&$`<> or a newline, escaped or not) is refused, not
 * interpreted: a command that relies on it cannot mean what a shell would make of it.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw refuse('has an unterminated single quote');
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (ch === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw refuse('has an unterminated double quote');
        const c = line[i]!;
        if (c === '"') break;
        if (c === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) {
          i++;
          if (line[i] !== '\n') word += line[i];
        } else word += c;
      }
    } else if (ch === '\\') {
      const next = line[i + 1];
      if (next === undefined) throw refuse('ends with a lone backslash');
      if (SHELL_METACHARACTERS.has(next)) throw refuse(`uses ${JSON.stringify(next)} outside quotes: shell syntax is refused, not interpreted`);
      i++;
      word += next;
      inWord = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (SHELL_METACHARACTERS.has(ch)) {
      throw refuse(`uses ${JSON.stringify(ch)} outside quotes: shell syntax is refused, not interpreted`);
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** `agent`, `/usr/local/bin/agent`, `bin/agent.js`: the program the client named, not a verb. */
function isProgramWord(w: string): boolean {
  return /(^|\/)agent(\.js)?$/.test(w);
}

/**
 * The verb and its arguments a client may run, from SSH_ORIGINAL_COMMAND: a leading program word
 * dropped, the verb one of SSH_SERVE_VERBS, no global option anywhere.
 */
export function sshServeArgs(original: string): string[] {
  const words = splitWords(original);
  if (words.length > 0 && isProgramWord(words[0]!)) words.shift();
  for (const w of words) {
    const opt = GLOBAL_OPTIONS.find((g) => w === g || w.startsWith(`${g}=`));
    if (opt) throw refuse(`sets ${opt}: global options are fixed by the forced command in authorized_keys, a client cannot choose them`);
  }
  const verb = words[0];
  if (verb === undefined) throw refuse(`names no verb: ssh-serve runs one of ${SSH_SERVE_VERBS.join(', ')}`);
  if (!(SSH_SERVE_VERBS as readonly string[]).includes(verb)) {
    throw refuse(`runs '${verb}': a master's key may run only ${SSH_SERVE_VERBS.join(', ')}`);
  }
  return words;
}
