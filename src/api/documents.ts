/**
 * The documents the CLI reads from a running agent, checked at the edge: an agent of another
 * version (upgraded CLI, old agent still running) whose answer does not fit is not trusted, and
 * the CLI computes live instead. The schemas are typed against the documents' own types, so a
 * change there that is not made here fails the typecheck.
 */
import { z } from 'zod';
import type { PlanDocument, StatusReport, StatusRow } from '../agent/status.js';
import type { AgentEvent } from '../registry/index.js';

const str = z.string();
const nstr = z.string().nullable();
const nnum = z.number().nullable();
const runtimeKind = z.enum(['container', 'unikernel']);

const row: z.ZodType<StatusRow> = z.object({
  service: str,
  component: str,
  workload: str,
  runtime: runtimeKind.nullable(),
  desired: z.enum(['running', 'absent']),
  observed: str,
  drift: z.enum(['in-sync', 'missing', 'stopped', 'exited', 'spec-changed', 'network', 'orphan', 'unknown', 'invalid', 'pending', 'drained', 'unhealthy']),
  reason: str,
  next_action: nstr,
  backoff_until: nstr,
  last_error: nstr,
  started_at: nstr,
  address: nstr,
  network: nstr,
  handle: nstr,
  restarts: z.number(),
  health: z.enum(['starting', 'healthy', 'unhealthy']).nullable(),
  health_output: nstr,
  health_since: nstr,
  last_event: z.object({ at: str, action: str, outcome: str, message: str }).nullable(),
  observed_at: nstr,
  observed_age_seconds: nnum,
});

export const statusDocument: z.ZodType<StatusReport> = z.object({
  registry: z.object({ path: str, writable: z.boolean(), reason: nstr, free_bytes: nnum }),
  agent: z.object({ running: z.boolean(), pid: nnum, last_pass_at: nstr, once_in_progress: z.boolean() }),
  node: z.object({ drained: z.boolean(), drained_since: nstr }),
  runtimes: z.partialRecord(runtimeKind, z.object({ ok: z.boolean(), error: nstr, observed_at: nstr, age_seconds: nnum })),
  source: z
    .object({
      kind: z.literal('nats'),
      urls: z.array(str),
      bucket: str,
      node: str,
      state: z.enum(['connecting', 'connected', 'waiting', 'disconnected']),
      since: str,
      revision: nnum,
      error: nstr,
      rejected: z.array(z.object({ key: str, revision: z.number(), error: str })),
    })
    .nullable(),
  resources: z
    .object({
      memory: z.object({ total_mib: z.number(), reserved_mib: z.number(), capacity_mib: z.number(), allocated_mib: z.number() }),
      vcpus: z.object({ online_cpus: z.number(), overcommit: z.number(), capacity: z.number(), allocated: z.number() }),
    })
    .nullable(),
  summary: z.record(str, z.number()),
  components: z.array(row),
});

const planAction = z.object({
  type: z.enum(['start', 'restart', 'replace', 'remove', 'adopt', 'stop']),
  workload: str,
  runtime: runtimeKind,
  reason: str,
  service: nstr,
  component: nstr,
  spec_hash: str.optional(),
});

export const planDocumentSchema: z.ZodType<PlanDocument> = z.object({
  drained: z.boolean(),
  actions: z.array(planAction),
  held: z.array(planAction.extend({ due_at: str, failures: z.number(), last_error: nstr })),
  not_admitted: z.array(planAction.extend({ not_admitted: str })),
  unknown_runtimes: z.array(z.object({ runtime: runtimeKind, error: str, components: z.array(str) })),
});

export const eventDocument: z.ZodType<AgentEvent> = z.object({
  id: z.number(),
  at: str,
  service: nstr,
  component: nstr,
  workload: nstr,
  action: str,
  reason: str,
  outcome: z.enum(['ok', 'error', 'info', 'pending', 'interrupted']),
  message: str,
});
export const eventsDocument = z.array(eventDocument);
