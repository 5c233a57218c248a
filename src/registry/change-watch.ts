/**
 * Notices writes to the registry's files at once (inotify through fs.watch), so that a commit by
 * another connection (a master's push, the sqlite3 CLI) is looked for within milliseconds instead
 * of at the next PRAGMA data_version poll. It only says "the files were written": the caller
 * decides with data_version whether another connection committed (our own writes notify too, and
 * change nothing there). Best effort by contract: a watch that cannot be set up or fails later
 * reports it once through `onError` and goes quiet; it never throws, and the poll remains.
 *
 * One watch on the registry's directory, filtered to the main file and its `-wal`: a directory
 * watch reports writes to the files in it by name, so it sees the `-wal` appear (SQLite creates it
 * with the first connection and may delete it with the last) and a main file written in
 * rollback-journal mode, with no watch to move from one inode to another.
 */
import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ChangeWatchOptions {
  /** The watch could not be set up, or failed: called at most once, then no more notices. */
  onError: (err: Error) => void;
  /**
   * A second notice this long after the last write. A commit's last WAL write lands a moment
   * before SQLite updates the shared index that data_version reads: the check made on the write
   * itself can come too early. Default 10 ms.
   */
  trailingMs?: number;
}

/** Calls `onChange` soon after the registry's files are written, until the returned function is called. */
export function watchRegistryFiles(path: string, onChange: () => void, o: ChangeWatchOptions): () => void {
  let real = path;
  try {
    real = realpathSync(path); // a symlinked registry: the writes happen where the file is
  } catch {
    // not there (yet): watch where it will be
  }
  const names = new Set([basename(real), `${basename(real)}-wal`]);
  let closed = false;
  let immediate: NodeJS.Immediate | undefined;
  let trailing: NodeJS.Timeout | undefined;
  const fire = (): void => {
    if (!closed) onChange();
  };
  // The writes of one commit arrive as a few events in one turn of the event loop: one notice.
  const notice = (): void => {
    immediate ??= setImmediate(() => {
      immediate = undefined;
      fire();
    });
    if (trailing) trailing.refresh();
    else {
      trailing = setTimeout(() => {
        trailing = undefined;
        fire();
      }, o.trailingMs ?? 10);
      trailing.unref();
    }
  };

  let watcher: FSWatcher | undefined;
  const close = (): void => {
    closed = true;
    watcher?.close();
    watcher = undefined;
    if (immediate) clearImmediate(immediate);
    if (trailing) clearTimeout(trailing);
  };
  const fail = (err: Error): void => {
    if (closed) return;
    close();
    o.onError(err);
  };
  try {
    watcher = watch(dirname(real), { persistent: false }, (_event, name) => {
      // Linux always names the file; where a platform does not, look anyway.
      if (name === null || names.has(name.toString())) notice();
    });
    watcher.on('error', fail);
  } catch (err) {
    // e.g. ENOSPC: the inotify watch limit is reached; EACCES.
    fail(err as Error);
  }
  return close;
}
