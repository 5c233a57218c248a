// The CLI bundle (second half of `npm run build`, after tsc): src/cli/main.ts and everything it
// imports, in one file, dist/bundle/agent.cjs, that bin/agent.js runs; then V8's code cache for it.
//
// Why one CommonJS file rather than ESM chunks: Node 20 has no compile cache for ES modules
// (module.enableCompileCache() is Node 22), but vm.Script takes V8's code cache for a script, so
// a CLI call deserializes bytecode instead of parsing ~2 MB of JavaScript. A module reached only
// through `import()` stays lazy in the bundle (esbuild wraps it in an init function run on first
// import): a command loads only what it uses. Figures: README, "Benchmarks".
//
// External (loaded from node_modules at run time): the native addons (better-sqlite3, ssh2 and
// its cpu-features), and what the sources load with createRequire on purpose (yaml, pino-pretty,
// cron: only when used). The bundle sits two levels under the root, as dist/registry/open.js
// does, so paths the sources compute from import.meta.url (../../migrations/) still hold.
import { randomBytes } from 'node:crypto';
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const require = createRequire(import.meta.url);
const { BUNDLE: OUT, bundleFile } = require('../bin/bundle.js');

/**
 * Node built-ins a CLI call mostly does not use, yet that modules require at load: commander
 * (node:child_process, for executable subcommands the agent has none of), cron, and the hashing
 * in the registry and net code (node:crypto), the agent API's client (node:http, unused when no
 * agent runs), the settings (node:net, for isIP on an address setting; node:os, for the default
 * NATS node name), and what only `agent run` uses (fs/promises and readline: the exit-file and
 * event watchers; perf_hooks: reaction times). Loading them costs ~12 ms a call (child_process and
 * http pull in net and stream). Each import gets a stand-in whose members load the real module on
 * first use: the same names (read from this Node, the one the bundle is for), the same values.
 */
const LAZY_BUILTINS = ['child_process', 'crypto', 'fs/promises', 'http', 'net', 'os', 'perf_hooks', 'readline'];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|')})$`);
    b.onResolve({ filter }, (args) =>
      // The stand-in's own require is of the real module.
      args.namespace === 'lazy-builtin' ? { path: args.path, external: true } : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const id = JSON.stringify(`node:${args.path}`);
      // The real module is kept once loaded: a require() per member read goes through Node's
      // loader each time (human-signals reads os.constants once per signal: ~40 ms in all).
      const members = Object.keys(require(`node:${args.path}`)).map((k) => `get ${JSON.stringify(k)}() { return real()[${JSON.stringify(k)}]; }`);
      return { contents: `let loaded;\nconst real = () => (loaded ??= require(${id}));\nmodule.exports = {\n${members.join(',\n')}\n};`, loader: 'js' };
    });
  },
};

/**
 * execa, initialized on its first call rather than at the bundle's load: its modules' top level
 * (verbose logging, signal tables, process.stdin opened) was ~15 ms of every CLI call, and only
 * `exec`, `logs` and the monitors of `agent run` call it (a command run to completion goes through
 * src/runtime/command.ts). The sources' `import { execa } from 'execa'` gets a stand-in whose
 * function requires the real execa when called: esbuild then wraps execa's modules in a lazy init.
 * Only the `execa` function is imported by the sources (the rest are types): esbuild refuses an
 * import of any other name from the stand-in.
 */
const lazyExeca = {
  name: 'lazy-execa',
  setup(b) {
    b.onResolve({ filter: /^execa$/ }, (args) => (args.namespace === 'lazy-execa' ? undefined : { path: 'execa', namespace: 'lazy-execa' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-execa' }, () => ({
      contents: "let loaded;\nexport function execa(...args) { return (loaded ??= require('execa')).execa(...args); }",
      loader: 'js',
      resolveDir: ROOT,
    }));
  },
};

/**
 * Two parts of zod the agent never uses, left out: its ~40 message locales (z.locales, ~300 KB of
 * the bundle; the agent speaks English, which zod registers by itself: classic/schemas.js imports
 * locales/en.js directly), and z.fromJSONSchema, whose module copies every schema constructor at
 * load. Less for each CLI call to read, deserialize and run.
 */
const trimmedZod = {
  name: 'trimmed-zod',
  setup(b) {
    const inZod = (args) => /[\\/]zod[\\/]/.test(args.importer);
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => (inZod(args) ? { path: 'locales', namespace: 'trimmed-zod' } : undefined));
    b.onResolve({ filter: /^\.\/from-json-schema\.js$/ }, (args) => (inZod(args) ? { path: 'from-json-schema', namespace: 'trimmed-zod' } : undefined));
    b.onLoad({ filter: /^locales$/, namespace: 'trimmed-zod' }, () => ({ contents: 'export {};', loader: 'js' }));
    b.onLoad({ filter: /^from-json-schema$/, namespace: 'trimmed-zod' }, () => ({
      contents: "export function fromJSONSchema() { throw new Error('z.fromJSONSchema is left out of the agent bundle (scripts/bundle.mjs)'); }",
      loader: 'js',
    }));
  },
};

/**
 * One more bundle per command (dist/bundle/agent.<command>.cjs), holding main.ts and that command
 * alone: every other command's module is left out (its COMMANDS entry still gives `--help` its
 * line). A call then reads, deserializes and runs the top level of its own share of the agent, not
 * of all of it. Not for the commands that run others (completion reads the whole tree, ssh-serve
 * runs apply/status/events/plan): they, `help` and a usage error use the whole bundle.
 */
const onlyCommand = (keep) => ({
  name: 'only-command',
  setup(b) {
    b.onResolve({ filter: /^\.\/(commands\/[a-z-]+|fleet)\.js$/ }, (args) => {
      if (!args.importer.endsWith(`${sep}src${sep}cli${sep}main.ts`)) return undefined;
      const name = args.path.replace(/^\.\/(commands\/)?/, '').replace(/\.js$/, '');
      return name === keep ? undefined : { path: name, namespace: 'only-command' };
    });
    b.onLoad({ filter: /.*/, namespace: 'only-command' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`internal: command ${args.path} is not in the ${keep} bundle`)});`,
      loader: 'js',
    }));
  },
});

const BUILD_ID = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
const bundle = (outfile, plugins) =>
  build({
    entryPoints: [new URL('../src/cli/main.ts', import.meta.url).pathname],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['ssh2', 'cpu-features'],
    // import() of an external (ssh2) becomes a require(): a vm.Script has no ESM loader.
    supported: { 'dynamic-import': false },
    // CommonJS has no import.meta: give it the bundle's own URL.
    // A build id (src/build-id.ts), the same in every bundle of a build: a CLI and an agent of the same build trust each other's documents.
    define: { 'import.meta.url': '__import_meta_url', __AGENT_BUILD__: JSON.stringify(BUILD_ID) },
    banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    sourcemap: 'linked',
    // The whole bundle's map carries the sources; a command's own map only points into them
    // (src/ of the checkout): 16 maps with their sources were 33 MB of dist/.
    sourcesContent: outfile === OUT,
    legalComments: 'none',
    // Less to read and hash per call; names stay, so a stack trace still reads (the map has the rest).
    minifyWhitespace: true,
    minifySyntax: true,
    plugins: [lazyBuiltins, lazyExeca, trimmedZod, ...plugins],
    logLevel: 'warning',
  });

rmSync(dirname(OUT), { recursive: true, force: true });
mkdirSync(dirname(OUT), { recursive: true });
await bundle(OUT, []);
const { COMMANDS } = require(OUT);
const own = Object.keys(COMMANDS).filter((name) => !COMMANDS[name].needsAll && name !== 'ssh-serve');
await Promise.all(own.map((name) => bundle(bundleFile(name), [onlyCommand(name === 'fleet' ? 'fleet' : name)])));

// bin/bundle.js reads the bundles as latin1: that is only right for ASCII.
for (const file of [OUT, ...own.map(bundleFile)]) {
  if (/[^\x00-\x7f]/.test(readFileSync(file, 'latin1'))) throw new Error(`${file} is not ASCII: bin/bundle.js reads it as latin1 (esbuild's charset must stay ascii)`);
}

// The code caches (see bin/bundle.js): one per command, each made in a fresh process (V8 would
// otherwise put every command's code in each) by loading the command and what it may import
// later (COMMANDS[name].later): their modules' top levels run, the command does not. Then the
// whole bundle's default one, of its top level alone.
for (const command of [...Object.keys(COMMANDS), undefined]) {
  const warm = `const { loadBundle } = require('./bin/bundle.js');
    const { exports: cli, saveCache } = loadBundle(${JSON.stringify(command)}, { exact: true });
    const c = cli.COMMANDS[${JSON.stringify(command)}];
    Promise.all(c ? [c.load(), c.later?.()] : []).then(() => saveCache());`;
  execFileSync(process.execPath, ['-e', warm], { cwd: ROOT, stdio: 'inherit' });
}
