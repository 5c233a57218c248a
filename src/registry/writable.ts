/**
 * Whether the registry can take writes, told from outside the process that writes: the file and
 * its directory are writable and the filesystem has room for a few SQLite pages. `agent status`
 * shows it (a running agent queues its bookkeeping in memory meanwhile; see WriteGuard), and a
 * health endpoint can reuse it. It reads, never writes: probing by writing would need the space.
 */
import { accessSync, constants, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/** Below this, a WAL frame (a 4 KiB page + header) and the pages of one commit may not fit. */
export const MIN_FREE_BYTES = 64 * 1024;

export interface RegistryWritability {
  writable: boolean;
  /** Why not, for a person: the rule broken and where. Null when writable. */
  reason: string | null;
  /** Free bytes on the registry's filesystem (for root, reserved blocks count); null if unknown. */
  free_bytes: number | null;
}

export function registryWritability(path: string): RegistryWritability {
  const dir = dirname(path);
  let free: number | null = null;
  try {
    const fs = statfsSync(dir);
    const blocks = process.getuid?.() === 0 ? fs.bfree : fs.bavail;
    free = Number(blocks) * Number(fs.bsize);
  } catch {
    /* unknown: judged by access alone */
  }
  for (const target of [path, dir]) {
    try {
      accessSync(target, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EROFS' ? 'its filesystem is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message;
      return { writable: false, reason: `${target} is not writable: ${why}`, free_bytes: free };
    }
  }
  if (free !== null && free < MIN_FREE_BYTES) {
    return { writable: false, reason: `the disk is full: ${free} bytes free on the filesystem of ${dir}`, free_bytes: free };
  }
  return { writable: true, reason: null, free_bytes: free };
}
