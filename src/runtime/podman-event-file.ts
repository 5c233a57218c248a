/**
 * podman's events, read where podman writes them. With `events_logger = "file"` (Debian's podman
 * 4.3 here) every podman process appends one JSON line per event to `<tmp_dir>/events/events.log`
 * (rootful: /run/libpod/events/events.log), the very lines `podman events --format json` prints.
 * `podman events` reads that file on a timer: it delivers events 25-250 ms late and costs 0.4% of
 * a core while it waits. An inotify watch on the file's directory reads each line as it is
 * appended, at no cost in between.
 *
 * Invariant: a line is told once, in file order. When the file is rotated or truncated (podman
 * rewrites it past its size limit) what was written meanwhile is unknown: `onGap` says so and
 * reading goes on from the end of the new file.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export const DEFAULT_EVENTS_FILE = '/run/libpod/events/events.log';

export interface EventFileTail {
  stop: () => void;
}

/**
 * Tails `path` from its current end. Resolves undefined when the file cannot be read (no such
 * file: podman logs events elsewhere), so the caller can use `podman events` instead.
 */
export async function tailEventFile(
  path: string,
  on: { line: (line: string) => void; gap: (why: string) => void; dead: (why: string) => void },
): Promise<EventFileTail | undefined> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return undefined;
  }
  let ino = st.ino;
  let offset = st.size;
  let rest = '';
  let reading = false;
  let again = false;
  let stopped = false;

  const readNew = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        const now = await stat(path).catch(() => undefined);
        if (!now) continue; // between a rotation's remove and rename: the next event reads it
        if (now.ino !== ino || now.size < offset) {
          ino = now.ino;
          offset = now.size;
          rest = '';
          on.gap('podman rotated its events file');
          continue;
        }
        if (now.size === offset) continue;
        const fh = await open(path, 'r');
        try {
          const buf = Buffer.alloc(now.size - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (rest + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          rest = lines.pop() ?? '';
          for (const l of lines) if (l && !stopped) on.line(l);
        } finally {
          await fh.close();
        }
      } while (again && !stopped);
    } finally {
      reading = false;
    }
  };

  let watcher: FSWatcher;
  try {
    // The directory, not the file: a rotation replaces the file, and the watch must outlive it.
    watcher = watch(dirname(path), { persistent: false }, (_type, name) => {
      if (!stopped && name === basename(path)) void readNew().catch((err: Error) => on.gap(`podman's events file could not be read: ${err.message}`));
    });
  } catch {
    return undefined;
  }
  watcher.on('error', (err) => {
    watcher.close();
    if (!stopped) on.dead(`the watch on podman's events file failed: ${err.message}`);
  });
  return {
    stop: () => {
      stopped = true;
      watcher.close();
    },
  };
}
