/**
 * One reconciler per registry. Two `agent run` (or a `run --once` beside a running agent) would
 * both see a component missing and both start it: a doubled container or VM. The claim lives in
 * the registry itself, so it covers every process that opens the same file, and it names the
 * holder by pid and start time, so a claim left by a killed agent is taken over, never obeyed.
 */
import { RegistryBusyError } from '../errors.js';
import type { Registry } from '../registry/index.js';
import { identityLive, selfIdentity } from './process-identity.js';

/** Claims the registry for this process; returns the release. Throws RegistryBusyError when taken. */
export function claimRegistry(registry: Registry, mode: 'run' | 'run --once', now = new Date()): () => void {
  const me = { ...selfIdentity(), mode, since: now.toISOString() };
  const holder = registry.meta.claimReconciler(me, identityLive);
  if (holder) {
    throw new RegistryBusyError(
      holder.pid,
      `another agent reconciles ${registry.path}: pid ${holder.pid} (\`${holder.mode}\` since ${holder.since}). ` +
        'Two would start every workload twice; stop that one first, or use `agent status` to watch it.',
    );
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    registry.meta.releaseReconciler(me);
  };
}
