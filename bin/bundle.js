// Loads the CLI bundle (dist/bundle/agent.cjs, made by scripts/bundle.mjs) through vm.Script with
// V8's code cache: Node 20 keeps no compiled code between runs by itself, and parsing the bundle
// afresh was most of a CLI call's start. One cache per command (agent.cjs.<command>.cache, made by
// the build), so a call reads the bytecode of what its command loads, not of every command;
// agent.cjs.cache covers the rest (help, a usage error).
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

/** The code cache file of a command; agent.cjs.cache without one. */
const cacheFile = (command) => (command ? `${BUNDLE}.${command}.cache` : `${BUNDLE}.cache`);

function read(file) {
  try {
    return readFileSync(file);
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
  let file = cacheFile(command);
  let cachedData = read(file);
  if (cachedData === undefined && command !== undefined && !opts.exact) {
    file = cacheFile(undefined);
    cachedData = read(file);
  }
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(BUNDLE, 'utf8')}\n})`;
  const script = new Script(source, { filename: BUNDLE, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
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

module.exports = { BUNDLE, cacheFile, commandWord, loadBundle };
