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
// CommonJS (bin/package.json): a CommonJS entry point spares Node its ES module loader.
'use strict';
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
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

/**
 * The bundle's exports, and `saveCache()`, which writes the cache when V8 refused it or there was
 * none. `command` picks the cache: the command's own when the build made one, else the default
 * (`exact`: the command's own even if missing, for the build to make it).
 */
function loadBundle(command, opts = {}) {
  let bundle = BUNDLE;
  let text = command === undefined ? undefined : read(bundleFile(command), 'latin1');
  let file;
  let cachedData;
  if (text !== undefined) {
    bundle = bundleFile(command);
    file = `${bundle}.cache`;
    cachedData = read(file);
  } else {
    text = readFileSync(BUNDLE, 'latin1');
    file = cacheFile(command);
    cachedData = read(file);
    if (cachedData === undefined && command !== undefined && !opts.exact) {
      file = cacheFile(undefined);
      cachedData = read(file);
    }
  }
  const source = `(function (exports, require, module, __filename, __dirname) {${text}\n})`;
  const script = new Script(source, { filename: bundle, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  const saveCache = () => {
    if (cachedData !== undefined && !script.cachedDataRejected) return;
    try {
      writeFileSync(`${file}.${process.pid}`, script.createCachedData());
      renameSync(`${file}.${process.pid}`, file);
    } catch {
      // A read-only install: each call parses the bundle; nothing else changes.
    }
  };
  return { exports: module.exports, saveCache };
}

module.exports = { BUNDLE, bundleFile, cacheFile, commandWord, loadBundle };
