// Loads the CLI bundle through vm.Script with V8's code cache: Node 20 keeps no compiled code
// between runs by itself, and parsing the bundle afresh was most of a CLI call's start.
// Two kinds of bundle (made by scripts/bundle.mjs): a command's own, dist/bundle/agent.<command>.cjs,
// holding that command alone, and the whole one, dist/bundle/agent.cjs, for help, a usage error,
// and the commands that run others (completion, ssh-serve). Each has its code cache beside it
// (<bundle>.cache), made by the build; the whole bundle has one per command it runs
// (agent.cjs.<command>.cache) and a default one (agent.cjs.cache).
// The bundles are ASCII (esbuild escapes the rest; the build checks): read as latin1, no UTF-8 decoding.
// V8 checks a cache against the source, its version and its flags: a rejected one only costs the
// parse, and is rewritten after the call (atomically, when the directory is writable).
// The build's caches hold the bundles' top level: the functions a call then runs (commander's
// parse, the settings, the registry, the command itself) are compiled during the call. So, as
// Chrome caches a script's code after it ran, the first call of a command that succeeds writes a
// second cache beside the build's, <cache>.run (V8's cache made after the call: with what it
// compiled), which later calls read instead: `agent events` ~37 -> ~31 ms of JavaScript here.
// Not for `agent run` (the agent's stop is no time to serialize the code of a whole life), nor for
// --help or --version (which run none of the command: their cache would be the one kept).
// CommonJS (bin/package.json): a CommonJS entry point spares Node its ES module loader.
'use strict';
const { existsSync, readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '../dist/bundle/agent.cjs');

/** Global options that take a value (src/cli/main.ts): the word after them is not the command. */
const VALUED_GLOBALS = new Set(['--db', '--config', '--log-level']);

/** The command word of `argv` (the cache to read), or undefined. */
function commandWord(argv) {
  for (let i = 2; i < argv.length; i++) {
    if (VALUED_GLOBALS.has(argv[i])) i++;
    else if (!argv[i].startsWith('-')) return /^[a-z][a-z-]*$/.test(argv[i]) ? argv[i] : undefined;
  }
  return undefined;
}

/** A command's own bundle (the command word is [a-z-]+: no path in it). */
const bundleFile = (command) => join(__dirname, `../dist/bundle/agent.${command}.cjs`);

/** The whole bundle's code cache for a command; agent.cjs.cache without one. */
const cacheFile = (command) => (command ? `${BUNDLE}.${command}.cache` : `${BUNDLE}.cache`);

function read(file, encoding) {
  try {
    return readFileSync(file, encoding);
  } catch {
    return undefined;
  }
}

/** Commands whose end is no time for a code cache (see the header). */
const NO_RUN_CACHE = new Set(['run']);

/** Whether `argv` only asks for help or the version (commander's flags, and `agent help ...`). */
const onlyHelp = (argv) => argv.slice(2).some((a) => a === '--help' || a === '-h' || a === '--version' || a === '-V') || commandWord(argv) === 'help';

/**
 * The bundle's exports, and `saveCache(exitCode)`, called when the command is done: writes the
 * run cache after a call that succeeded and did not read one (or whose cache V8 refused).
 * `command` picks the cache: the command's own when the build made one, else the default
 * (`exact`: the command's own even if missing, and the build's cache alone, for the build to make it).
 * `argv`: the call's, to tell a call for help (no run cache) from one that runs the command.
 */
function loadBundle(command, opts = {}) {
  let bundle = BUNDLE;
  let text = command === undefined ? undefined : read(bundleFile(command), 'latin1');
  let file;
  if (text !== undefined) {
    bundle = bundleFile(command);
    file = `${bundle}.cache`;
  } else {
    text = readFileSync(BUNDLE, 'latin1');
    file = cacheFile(command);
    if (command !== undefined && !opts.exact && !existsSync(file)) file = cacheFile(undefined);
  }
  const runFile = `${file}.run`;
  const runCache = !opts.exact && command !== undefined && !NO_RUN_CACHE.has(command);
  let cachedData = runCache ? read(runFile) : undefined;
  const fromRun = cachedData !== undefined;
  cachedData ??= read(file);
  const source = `(function (exports, require, module, __filename, __dirname) {${text}\n})`;
  const script = new Script(source, { filename: bundle, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  const write = (target) => {
    const tmp = `${target}.${process.pid}`;
    try {
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, target);
    } catch {
      // A read-only install: each call compiles what the cache lacks; nothing else changes. A
      // full disk may have left part of the file: it goes.
      try {
        rmSync(tmp, { force: true });
      } catch {
        /* not ours to remove (read-only) */
      }
    }
  };
  const saveCache = (exitCode = 0) => {
    const refused = cachedData === undefined || script.cachedDataRejected;
    if (runCache) {
      if (exitCode === 0 && (!fromRun || refused) && !onlyHelp(opts.argv ?? [])) write(runFile);
    } else if (refused) {
      write(file);
    }
  };
  return { exports: module.exports, saveCache };
}

module.exports = { BUNDLE, bundleFile, cacheFile, commandWord, loadBundle };
