// The layering of src/, read from the import statements themselves: the adapters (src/runtime,
// src/net) are driven by the agent and never reach back into it or into the command line.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

/** Layer (a folder under src/) -> the layers it must never import from. */
const FORBIDDEN: Record<string, string[]> = {
  runtime: ['agent', 'api', 'cli', 'doctor'],
  net: ['agent', 'api', 'cli', 'doctor'],
  // The doctor sits beside the agent: it reads what the agent reads and is given the adapters by
  // the command line (src/cli/commands/doctor.ts), never the other way round. The agent is served
  // by the local API (src/api) and driven by the CLI; it knows neither.
  agent: ['api', 'cli', 'doctor', 'nats'],
  doctor: ['cli'],
  api: ['cli'],
  // The NATS source is an adapter the command line wires to the agent (through its hooks): the agent never imports it.
  nats: ['api', 'cli'],
};

/** The concrete adapters: only the composition root builds them; everything else gets their interfaces. */
const ADAPTERS = ['src/net/host.ts', 'src/runtime/podman.ts', 'src/runtime/qemu/runtime.ts'];
const COMPOSITION_ROOT = 'src/cli/compose.ts';

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Every module specifier of static imports, re-exports and dynamic `import()` in `source`. */
function importSpecifiers(source: string): string[] {
  const specs: string[] = [];
  const patterns = [/^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/gms, /^\s*import\s*['"]([^'"]+)['"]/gm, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** The layer (first folder under src/) a file or a resolved import lies in; undefined outside src/. */
function layerOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(/[\\/]/);
  return parts.length > 1 ? parts[0] : undefined;
}

/** `file imports target` for each import of a file in a layer that must not reach its target's layer. */
function violations(): string[] {
  const found: string[] = [];
  for (const file of tsFiles(SRC)) {
    const forbidden = FORBIDDEN[layerOf(file) ?? ''];
    if (!forbidden) continue;
    for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const layer = layerOf(target);
      if (layer && forbidden.includes(layer)) found.push(`${relative(ROOT, file)} imports ${spec} (src/${layer}): src/${layerOf(file)} must not import from ${forbidden.map((l) => `src/${l}`).join(' or ')}`);
    }
  }
  return found;
}

/** `file imports adapter` for each import of a concrete adapter outside the composition root. */
function adapterImports(): string[] {
  const found: string[] = [];
  for (const file of tsFiles(SRC)) {
    const rel = relative(ROOT, file);
    if (rel === COMPOSITION_ROOT) continue;
    for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
      const target = relative(ROOT, resolve(dirname(file), spec)).replace(/\.js$/, '.ts');
      if (spec.startsWith('.') && ADAPTERS.includes(target)) found.push(`${rel} imports ${spec}: only ${COMPOSITION_ROOT} builds the concrete adapters (take the interface instead)`);
    }
  }
  return found;
}

describe('import graph', () => {
  it('reads static, type-only, re-exported, multi-line and dynamic imports', () => {
    const src = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      'import {\n  c,\n  d,\n} from "../../c.js";',
      "export { e } from './e.js';",
      "import './side-effect.js';",
      "const f = await import('./f.js');",
      "// the word import in a comment from nowhere",
    ].join('\n');
    assert.deepEqual(importSpecifiers(src).sort(), ['../../c.js', '../b.js', './a.js', './e.js', './f.js', './side-effect.js']);
  });

  it('src/runtime and src/net import nothing from src/agent, src/cli or src/doctor; src/doctor nothing from src/cli', () => {
    const found = violations();
    assert.deepEqual(found, [], `imports against the layering:\n${found.join('\n')}`);
  });

  it(`only ${COMPOSITION_ROOT} imports the concrete adapters (${ADAPTERS.join(', ')})`, () => {
    const found = adapterImports();
    assert.deepEqual(found, [], `adapters imported outside the composition root:\n${found.join('\n')}`);
  });
});
