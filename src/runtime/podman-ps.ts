/**
 * What podman says of its containers, read into what the agent observes: `podman ps --format json`
 * and the REST API's `GET /libpod/containers/json` print the same entries (podman's ListContainer),
 * so one schema reads both. Pure: text in, Observed out.
 *
 * Invariant: output that does not match is an error naming the operation, never a guess (a runtime
 * that cannot be read is `unknown`, not empty).
 */
import { z } from 'zod';
import { RuntimeError } from '../errors.js';
import { LABEL_COMPONENT, LABEL_SPEC_HASH, parseComponentLabel } from '../identity.js';
import type { Observed, WorkloadState } from './types.js';

export const PsEntrySchema = z.object({
  Id: z.string(),
  Names: z.array(z.string()).nullish(),
  State: z.string(),
  Labels: z.record(z.string(), z.string()).nullish(),
  ExitCode: z.number().optional(),
  StartedAt: z.number().optional(),
  Exited: z.boolean().optional(),
});
export type PsEntry = z.infer<typeof PsEntrySchema>;
const PsOutputSchema = z.array(PsEntrySchema).nullable();

export function stateOf(podmanState: string): WorkloadState {
  switch (podmanState) {
    case 'running':
      return 'running';
    case 'exited':
    case 'stopped':
    case 'dead':
      return 'exited';
    case 'created':
    case 'configured':
    case 'initialized':
      return 'created';
    case 'paused':
      return 'paused';
    case 'stopping':
      return 'stopping';
    default:
      return 'unknown';
  }
}

/**
 * The containers in a listing's JSON text; `source` says who printed it ('podman ps', 'the podman
 * API'), for the error. An empty text or `null` (the API's answer for none) is no containers.
 */
export function parsePsJson(text: string, operation: string, source: string): PsEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text.trim() || '[]');
  } catch {
    throw new RuntimeError('podman', operation, undefined, `${source} printed something that is not JSON`);
  }
  const parsed = PsOutputSchema.safeParse(raw);
  if (!parsed.success) throw new RuntimeError('podman', operation, undefined, `unexpected ${source} output: ${parsed.error.message}`);
  return parsed.data ?? [];
}

export function observedOf(c: PsEntry): Observed {
  const labels = c.Labels ?? {};
  return {
    runtime: 'container',
    name: c.Names?.[0] ?? c.Id.slice(0, 12),
    id: c.Id,
    key: parseComponentLabel(labels[LABEL_COMPONENT]),
    specHash: labels[LABEL_SPEC_HASH],
    state: stateOf(c.State),
    exitCode: c.ExitCode,
    startedAt: c.StartedAt && c.StartedAt > 0 ? new Date(c.StartedAt * 1000).toISOString() : undefined,
    address: undefined,
  };
}
