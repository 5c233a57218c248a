/**
 * Streams `podman events` for this agent's containers, so a container that dies wakes the loop at
 * once instead of at the next resync. The stream ends with the agent, even on SIGKILL
 * (boundToAgent); it is also started with `--until` a window ahead and restarted when it ends.
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { boundToAgent } from '../child-lifetime.js';
import type { RuntimeEvent } from './types.js';

export interface PodmanEventsOptions {
  binary: string;
  env: Record<string, string> | undefined;
  filter: string;
  onEvent: (e: RuntimeEvent) => void;
  windowSeconds?: number;
}

const INTERESTING = new Set(['died', 'start', 'remove', 'stop', 'kill', 'create', 'pause', 'unpause', 'cleanup']);

export function watchPodmanEvents(o: PodmanEventsOptions): () => void {
  const windowSeconds = o.windowSeconds ?? 60;
  let stopped = false;
  let child: ResultPromise | undefined;
  let retry: NodeJS.Timeout | undefined;

  const spawnOnce = (): void => {
    if (stopped) return;
    const now = new Date();
    const until = new Date(now.getTime() + windowSeconds * 1000);
    const started = Date.now();
    const [file, argv] = boundToAgent(o.binary, ['events', '--format', 'json', '--filter', o.filter, '--since', now.toISOString(), '--until', until.toISOString()]);
    child = execa(file, argv, { env: o.env, stdin: 'ignore', stderr: 'ignore', buffer: false, reject: false });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const ev = JSON.parse(line) as { Name?: string; Status?: string; ContainerExitCode?: number; Type?: string };
        if (ev.Type && ev.Type !== 'container') return;
        if (!ev.Name || !ev.Status || !INTERESTING.has(ev.Status)) return;
        o.onEvent({ runtime: 'container', workload: ev.Name, status: ev.Status, exitCode: ev.ContainerExitCode });
      } catch {
        // not an event line: ignore
      }
    });
    void child.then(() => {
      if (stopped) return;
      // Ended early (podman missing, or failing): retry later instead of spinning.
      const ranFor = Date.now() - started;
      retry = setTimeout(spawnOnce, ranFor < 1000 ? 5000 : 0);
      retry.unref();
    });
  };
  spawnOnce();

  return () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    child?.kill('SIGTERM');
  };
}
