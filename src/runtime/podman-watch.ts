/**
 * What the agent hears of its containers between listings, from two sources: conmon's exit files
 * (podman-exits.ts, at once) and podman's events (podman-events.ts: its events file, read as it
 * is written; `podman events`, 25-250 ms late here, as the fallback).
 * Each event is turned into what the container is after it, when the event alone says so.
 *
 * Invariant: one death is told once. podman's own `died` event for a death an exit file already
 * told comes later (podman's cleanup stamps it, often after a restart began): it is paired with
 * its hint and swallowed, or the agent would see the old death after the restart.
 */
import { LABEL_COMPONENT, LABEL_SPEC_HASH, parseComponentLabel } from '../identity.js';
import { watchPodmanEvents, type PodmanEvent } from './podman-events.js';
import { watchExitFiles } from './podman-exits.js';
import type { Observed, RuntimeEvent, WorkloadState } from './types.js';

export interface ContainerWatchOptions {
  binary: string;
  env: Record<string, string>;
  /** podman's events filter that selects this agent's containers. */
  filter: string;
  exitDir: string;
  /** The container of this id as the runtime last saw it (an exit file names only the id). */
  byId: (id: string) => Observed | undefined;
  /** Tells the runtime what a container now is. */
  seenNow: (o: Observed) => Observed;
  onEvent: (e: RuntimeEvent) => void;
}

export function watchContainers(o: ContainerWatchOptions): () => Promise<void> {
  const hints = new Map<string, number[]>();
  const stopExits = watchExitFiles(o.exitDir, (x) => {
    const known = o.byId(x.id);
    if (!known) return; // not ours, or not seen yet: the events stream tells
    const observed = o.seenNow({ ...known, state: 'exited', exitCode: x.exitCode });
    hints.set(x.id, [...(hints.get(x.id) ?? []), x.at].slice(-8));
    o.onEvent({ runtime: 'container', workload: known.name, status: 'died', exitCode: x.exitCode, at: x.at, observed });
  });
  /** Whether podman's `died` event at `at` is a death an exit file already told (within 2 s before it). */
  const hinted = (id: string, at: number): boolean => {
    const pending = (hints.get(id) ?? []).filter((t) => t >= at - 2000);
    const i = pending.findIndex((t) => t <= at + 50);
    if (i >= 0) pending.splice(i, 1);
    if (pending.length) hints.set(id, pending);
    else hints.delete(id);
    return i >= 0;
  };
  const stopEvents = watchPodmanEvents({
    binary: o.binary,
    env: o.env,
    filter: o.filter,
    onEvent: (e) => {
      if (e.status === 'died' && hinted(e.id, e.at)) return;
      const observed = observedAfter(e);
      if (observed) o.seenNow(observed);
      // `kill`, `stop`, `cleanup` tell no state of their own: the `died` that goes with them does.
      if (observed !== undefined || LOOK_AFTER.has(e.status)) o.onEvent({ runtime: 'container', workload: e.name, status: e.status, exitCode: e.exitCode, at: e.at, observed });
    },
    onGap: (why) => o.onEvent({ runtime: 'container', gap: true, why }),
  });
  return async () => {
    stopExits();
    await stopEvents();
  };
}

/**
 * Only events whose state can be trusted by their time: podman stamps `start` after the runtime
 * started the container, and a container that exits at once has often died (exit file) before
 * that stamp. So `start`, `restart` and `unpause` say "look" (one targeted inspect), not "running".
 */
const STATE_AFTER: Record<string, WorkloadState | undefined> = { create: 'created', died: 'exited', pause: 'paused' };
const LOOK_AFTER = new Set(['start', 'restart', 'unpause']);

/**
 * What a container is after one of its events, from the event alone (podman's events carry the
 * id, the labels and the exit code): null when it was removed, undefined when the event does not
 * say (a `kill` signals, it does not tell whether the container died).
 */
export function observedAfter(e: PodmanEvent): Observed | null | undefined {
  if (e.status === 'remove') return null;
  const state = STATE_AFTER[e.status];
  if (state === undefined) return undefined;
  return {
    runtime: 'container',
    name: e.name,
    id: e.id,
    key: parseComponentLabel(e.labels[LABEL_COMPONENT]),
    specHash: e.labels[LABEL_SPEC_HASH],
    state,
    exitCode: state === 'exited' ? e.exitCode : undefined,
    startedAt: undefined,
    address: undefined,
  };
}
