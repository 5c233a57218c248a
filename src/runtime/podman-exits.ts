/**
 * The moment a container's process ends, conmon writes its exit code to a file named by the
 * container's id in podman's exit directory (`/run/libpod/exits` for rootful podman: engine
 * tmp_dir + /exits). podman's own `died` event is logged ~40 ms later (by its cleanup process),
 * and reaches `podman events` 25-250 ms after that; an inotify watch on the directory knows at once.
 * A hint that only ever says "this id ended with this code": the events stream still tells the
 * rest, and a directory that does not exist (another tmp_dir) just turns the hint off.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const DEFAULT_EXIT_DIR = '/run/libpod/exits';

export interface ExitFile {
  id: string;
  exitCode: number;
  /** When conmon wrote it (ms since the epoch). */
  at: number;
}

const CONTAINER_ID = /^[0-9a-f]{64}$/;

/** Calls `onExit` once per exit file written; returns a function that stops watching. */
export function watchExitFiles(dir: string, onExit: (e: ExitFile) => void): () => void {
  let watcher: FSWatcher | undefined;
  /** The mtime of the last exit told per id: inotify says "changed" more than once per write. */
  const told = new Map<string, number>();
  const look = async (id: string): Promise<void> => {
    const path = join(dir, id);
    try {
      const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
      const exitCode = Number.parseInt(text.trim(), 10);
      if (!Number.isInteger(exitCode) || told.get(id) === st.mtimeMs) return; // not written yet, or told
      told.set(id, st.mtimeMs);
      if (told.size > 4096) told.delete(told.keys().next().value!);
      onExit({ id, exitCode, at: st.mtimeMs });
    } catch {
      // removed again (podman cleans up), or unreadable: the events stream tells
    }
  };
  try {
    watcher = watch(dir, { persistent: false }, (_type, name) => {
      if (name && CONTAINER_ID.test(name)) void look(name);
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    watcher = undefined; // no such directory: no hint, events only
  }
  return () => watcher?.close();
}
