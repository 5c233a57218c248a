/** Lists every runtime at once; a runtime that fails to list is reported, never thrown. */
import type { RuntimeKind } from '../manifest/schema.js';
import type { Runtime } from '../runtime/types.js';
import type { RuntimeListing } from './planner.js';

export async function observeAll(runtimes: Map<RuntimeKind, Runtime>): Promise<Partial<Record<RuntimeKind, RuntimeListing>>> {
  const entries = await Promise.all(
    [...runtimes].map(async ([kind, rt]): Promise<[RuntimeKind, RuntimeListing]> => {
      try {
        return [kind, { ok: true, items: await rt.list() }];
      } catch (err) {
        return [kind, { ok: false, error: (err as Error).message }];
      }
    }),
  );
  return Object.fromEntries(entries);
}
