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
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const require = createRequire(import.meta.url);
const { BUNDLE: OUT } = require('../bin/bundle.js');

/**
 * Node built-ins a CLI call mostly does not use, yet that modules require at load: commander
 * (node:child_process, for executable subcommands the agent has none of), cron, and the hashing
 * in the registry and net code (node:crypto), the agent API's client (node:http, unused when no
 * agent runs), the settings (node:net, for isIP on an address setting; node:os, for the default
 * NATS node name). Loading them costs ~10 ms a call (child_process and http pull in net and
 * stream). Each import gets a stand-in whose members load the real module on first use: the same
 * names (read from this Node, the one the bundle is for), the same values.
 */
const LAZY_BUILTINS = ['child_process', 'crypto', 'http', 'net', 'os'];
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
      const members = Object.keys(require(`node:${args.path}`)).map((k) => `get ${JSON.stringify(k)}() { return require(${id})[${JSON.stringify(k)}]; }`);
      return { contents: `module.exports = {\n${members.join(',\n')}\n};`, loader: 'js' };
    });
  },
};

/**
 * zod re-exports every one of its ~40 message locales (z.locales, ~300 KB of the bundle); the agent
 * speaks English only, which zod registers by itself (classic/schemas.js imports locales/en.js
 * directly). Dropping the rest leaves less for each CLI call to read and deserialize.
 */
const englishOnlyZod = {
  name: 'english-only-zod',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => (/[\\/]zod[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'english-only-zod' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'english-only-zod' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

rmSync(dirname(OUT), { recursive: true, force: true });
mkdirSync(dirname(OUT), { recursive: true });
await build({
  entryPoints: [new URL('../src/cli/main.ts', import.meta.url).pathname],
  outfile: OUT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['ssh2', 'cpu-features'],
  // import() of an external (ssh2) becomes a require(): a vm.Script has no ESM loader.
  supported: { 'dynamic-import': false },
  // CommonJS has no import.meta: give it the bundle's own URL.
  // A fresh build id (src/build-id.ts): a CLI and an agent of the same build trust each other's documents.
  define: { 'import.meta.url': '__import_meta_url', __AGENT_BUILD__: JSON.stringify(`${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`) },
  banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  sourcemap: 'linked',
  legalComments: 'none',
  // Less to read and hash per call; names stay, so a stack trace still reads (the map has the rest).
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [lazyBuiltins, englishOnlyZod],
  logLevel: 'warning',
});

// The code caches (see bin/bundle.js): one per command, each made in a fresh process (V8 would
// otherwise put every command's code in each) by loading the command and what it may import
// later (COMMANDS[name].later): their modules' top levels run, the command does not. Then the
// default one, of the bundle's top level alone.
const { COMMANDS } = require(OUT);
for (const command of [...Object.keys(COMMANDS), undefined]) {
  const warm = `const { loadBundle } = require('./bin/bundle.js');
    const { exports: cli, saveCache } = loadBundle(${JSON.stringify(command)}, { exact: true });
    const c = cli.COMMANDS[${JSON.stringify(command)}];
    Promise.all(c ? [c.load(), c.later?.()] : []).then(() => saveCache());`;
  execFileSync(process.execPath, ['-e', warm], { cwd: ROOT, stdio: 'inherit' });
}
