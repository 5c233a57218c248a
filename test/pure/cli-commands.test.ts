// The CLI loads only the chosen command (src/cli/main.ts): the others are stubs made from COMMANDS.
// Keeps COMMANDS true to the command modules, and checks which word of argv picks the command.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Help } from 'commander';
import { chosenCommand, COMMANDS, program } from '../../src/cli/main.js';

const argv = (...words: string[]): string[] => ['node', 'agent', ...words];

describe('COMMANDS', () => {
  it('says what each command module says (term and description), so `agent --help` reads the same without loading them', async () => {
    const help = new Help();
    for (const [name, entry] of Object.entries(COMMANDS)) {
      const real = await entry.load();
      assert.equal(real.name(), name);
      const want = { term: help.subcommandTerm(real), description: real.description() };
      assert.deepEqual({ term: entry.term, description: entry.description }, want, `COMMANDS['${name}'] in src/cli/main.ts must be ${JSON.stringify(want)}`);
    }
  });

  it('top-level help from stubs is the help with every command loaded', async () => {
    const stubs = (await program(argv('--help'))).helpInformation();
    const loaded = (await program(argv('--help'), { all: true })).helpInformation();
    assert.equal(stubs, loaded);
    for (const name of Object.keys(COMMANDS)) assert.match(stubs, new RegExp(`^  ${name}\\b`, 'm'));
  });

  it('a loaded command with subcommands lists them with their own terms (stub terms are for stubs only)', async () => {
    const net = (await program(argv('net', '--help'))).commands.find((c) => c.name() === 'net')!;
    const text = net.helpInformation();
    for (const line of [/^ {2}up +create/m, /^ {2}down +remove/m, /^ {2}status \[options\] +whether the bridge/m]) assert.match(text, line);
  });
});

describe('chosenCommand', () => {
  it('is the first word that is not a global option or its value', () => {
    assert.equal(chosenCommand(argv('status', '--json')), 'status');
    assert.equal(chosenCommand(argv('--db', 'status', 'events')), 'events', '--db takes a value');
    assert.equal(chosenCommand(argv('--config', 'x.toml', '--log-level', 'debug', 'plan')), 'plan');
    assert.equal(chosenCommand(argv('--db=x.db', 'run', '--once')), 'run');
    assert.equal(chosenCommand(argv('help', 'logs')), 'logs');
    assert.equal(chosenCommand(argv('fleet', 'status', '-i', 'inv.toml')), 'fleet');
  });

  it('is undefined for top-level help, no command, or a word that is no command', () => {
    for (const a of [argv(), argv('--help'), argv('help'), argv('--db', 'x.db'), argv('statsu'), argv('constructor'), argv('--', 'status')]) {
      assert.equal(chosenCommand(a), undefined, a.join(' '));
    }
  });
});
