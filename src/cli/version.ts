/**
 * The package's version, read at run time from its package.json. Found by walking up from this
 * module's own file, so it holds wherever the code runs from: dist/cli/ after tsc, a bundle in
 * another dist path, or src/ under tsx. Only a package.json named mcp-node-agent counts.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'mcp-node-agent';

/** The version, or undefined when no package.json of ours is above `from` (a copied file). */
export function packageVersion(from: string = fileURLToPath(import.meta.url)): string | undefined {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here, or not JSON: keep walking up
    }
    if (dirname(dir) === dir) return undefined;
  }
}
