/**
 * The command a node runs is a fixed argument vector. SSH carries one string that the remote
 * user's shell splits again, so every word is single-quoted: no word of an inventory or manifest
 * can become shell syntax on the node. Manifests never travel here; they go on stdin.
 */

/** One word for a POSIX shell: `'…'`, with each `'` written as `'\''`. */
export function shellQuote(word: string): string {
  if (word.includes('\0')) throw new Error('a command word cannot contain NUL');
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An argv as the single command string SSH sends. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('an empty command');
  return argv.map(shellQuote).join(' ');
}
