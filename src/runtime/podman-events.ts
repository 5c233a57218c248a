/**
 * podman's events for this agent's containers, so a change made behind the agent's back is known
 * at once instead of at the next resync. Read from podman's events file when podman logs there
 * (podman-event-file.ts: inotify, no process, no polling), else from a `podman events` stream.
 * The stream ends with the agent, even on SIGKILL (boundToAgent); it is started with `--until` a
 * window ahead and restarted when it ends, each window beginning where the last one ended
 * (`--since` = the last `--until`), so no event falls between two. When a stream ends early
 * (podman failing, killed) or the file is rotated, events may have been missed: `onGap` says so,
 * and whoever keeps a view of the containers lists them again.
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { boundToAgent, helperExited } from '../child-lifetime.js';
import { runBounded } from './command.js';
import { DEFAULT_EVENTS_FILE, tailEventFile } from './podman-event-file.js';

export interface PodmanEventsOptions {
  binary: string;
  env: Record<string, string> | undefined;
  filter: string;
  onEvent: (e: PodmanEvent) => void;
  onGap: (why: string) => void;
  windowSeconds?: number;
  /** podman's events file (default /run/libpod/events/events.log); null: always `podman events`. */
  eventsFile?: string | null;
}

/** One container event as podman prints it (podman 4.3: one JSON object a line). */
const PodmanEventSchema = z.object({
  ID: z.string(),
  Name: z.string(),
  Status: z.string(),
  Time: z.string(),
  Type: z.string().optional(),
  Attributes: z.record(z.string(), z.string()).nullish(),
  ContainerExitCode: z.number().optional(),
});

export interface PodmanEvent {
  id: string;
  name: string;
  status: string;
  /** ms since the epoch (podman gives nanoseconds; milliseconds are enough to order by). */
  at: number;
  labels: Record<string, string>;
  exitCode: number | undefined;
}

/** The statuses that change what a container is (others, like `init` or `exec`, are ignored). */
const INTERESTING = new Set(['died', 'start', 'remove', 'stop', 'kill', 'create', 'pause', 'unpause', 'cleanup', 'restart']);

/** A line of `podman events --format json`, or undefined when it is not a container event we use. */
export function parsePodmanEvent(line: string): PodmanEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = PodmanEventSchema.safeParse(raw);
  if (!r.success) return undefined;
  const e = r.data;
  if ((e.Type && e.Type !== 'container') || !INTERESTING.has(e.Status)) return undefined;
  const at = Date.parse(e.Time);
  if (Number.isNaN(at)) return undefined;
  return { id: e.ID, name: e.Name, status: e.Status, at, labels: e.Attributes ?? {}, exitCode: e.ContainerExitCode };
}

/**
 * podman's events for `filter` (`label=K=V`): read from podman's events file when podman logs
 * events to a file there (podman-event-file.ts, at once and at no cost while idle), otherwise, or
 * when that watch fails, from a `podman events` stream.
 */
export function watchPodmanEvents(o: PodmanEventsOptions): () => Promise<void> {
  let stopped = false;
  let stopCurrent: (() => void | Promise<void>) | undefined;
  const useStream = (): void => {
    if (!stopped) stopCurrent = streamPodmanEvents(o);
  };
  const file = o.eventsFile === undefined ? DEFAULT_EVENTS_FILE : o.eventsFile;
  const label = /^label=([^=]+)=(.*)$/.exec(o.filter);
  if (file === null || !label) {
    useStream();
  } else {
    void (async () => {
      const logger = await eventLogger(o).catch(() => undefined);
      const tail =
        logger === 'file' && !stopped
          ? await tailEventFile(file, {
              line: (l) => {
                const e = parsePodmanEvent(l);
                if (e && e.labels[label[1]!] === label[2]) o.onEvent(e);
              },
              gap: o.onGap,
              dead: (why) => {
                o.onGap(why);
                useStream();
              },
            })
          : undefined;
      if (stopped) return tail?.stop();
      if (!tail) return useStream();
      stopCurrent = tail.stop;
      // Events between the agent's start and this moment were read by nobody: look again.
      o.onGap('podman events are read from its events file from now on');
    })();
  }
  return async () => {
    stopped = true;
    await stopCurrent?.();
  };
}

/** podman's `events_logger` (file, journald, none), from `podman info`. */
async function eventLogger(o: PodmanEventsOptions): Promise<string> {
  const r = await runBounded(o.binary, ['info', '--format', '{{.Host.EventLogger}}'], { runtime: 'podman', operation: 'probe', timeoutMs: 10_000, read: true }, { env: o.env });
  return r.stdout.trim();
}

/** The `podman events` process, in contiguous windows (see the file's header). */
function streamPodmanEvents(o: PodmanEventsOptions): () => Promise<void> {
  const windowSeconds = o.windowSeconds ?? 60;
  let stopped = false;
  let child: ResultPromise | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** Where the next window begins: the end of the last one that ran to its end. */
  let since: Date | undefined;

  const spawnOnce = (): void => {
    if (stopped) return;
    const from = since ?? new Date();
    const until = new Date(Math.max(Date.now(), from.getTime()) + windowSeconds * 1000);
    const started = Date.now();
    const [file, argv] = boundToAgent(o.binary, ['events', '--format', 'json', '--filter', o.filter, '--since', from.toISOString(), '--until', until.toISOString()]);
    child = execa(file, argv, { env: o.env, stdin: 'ignore', stderr: 'ignore', buffer: false, reject: false });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const e = parsePodmanEvent(line);
      if (e) o.onEvent(e);
    });
    void child.then((r) => {
      if (stopped) return;
      const endedInTime = r.exitCode === 0 && Date.now() >= until.getTime() - 100;
      if (endedInTime) {
        since = until; // contiguous: the next window starts where this one ended
        spawnOnce();
        return;
      }
      // Ended early (podman missing, failing, killed): events may have been missed. Say so now
      // (the containers are listed again), and retry later instead of spinning, replaying this
      // window from its start: podman reads its event log back, and old events change nothing.
      since = from;
      o.onGap(`podman events ended early (exit ${r.exitCode ?? r.signal ?? '?'})`);
      const ranFor = Date.now() - started;
      retry = setTimeout(spawnOnce, ranFor < 1000 ? 5000 : 0);
      retry.unref();
    });
  };
  spawnOnce();

  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    if (!child) return;
    child.kill('SIGTERM');
    await helperExited(child);
  };
}
