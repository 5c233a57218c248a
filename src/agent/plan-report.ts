/**
 * The `plan` document: what the next pass would do (`actions`), what it would do but a backoff
 * holds back (`held`, each with when it becomes due), and which runtimes cannot list (their
 * components are `unknown` and left alone). Plain JSON, built from a PlanResult by a pure
 * function, so `plan --json`, `plan`'s table and the running agent's answer are the same data
 * whichever path computed it.
 */
import { keyString } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { Action, PlanResult } from './planner.js';

export interface PlanActionJson {
  type: Action['type'];
  workload: string;
  runtime: RuntimeKind;
  reason: string;
  service: string | null;
  component: string | null;
  /** The spec a start, restart, replace or adopt is for (the spec itself is large). */
  spec_hash?: string;
}

export interface HeldActionJson extends PlanActionJson {
  /** When the backoff ends: the first pass after it takes the action. */
  due_at: string;
  failures: number;
  last_error: string | null;
}

/** A start, restart or replace that does not fit the host this pass (admission.ts): its component is `pending`. */
export interface NotAdmittedJson extends PlanActionJson {
  /** `does not fit: needs 16064 MiB, 7040 MiB free of 23593 (reserved 512)`. */
  not_admitted: string;
}

export interface UnknownRuntimeJson {
  runtime: RuntimeKind;
  error: string;
  /** `service/component` of the registry's components on it: unknown, and left alone. */
  components: string[];
}

export interface PlanDocument {
  /** The node is drained (`agent drain`): its actions only stop workloads, nothing starts. */
  drained: boolean;
  actions: PlanActionJson[];
  held: HeldActionJson[];
  not_admitted: NotAdmittedJson[];
  unknown_runtimes: UnknownRuntimeJson[];
}

export function actionJson(a: Action): PlanActionJson {
  const { type, workload, runtime, reason } = a;
  const out: PlanActionJson = { type, workload, runtime, reason, service: a.key?.service ?? null, component: a.key?.component ?? null };
  if ('specHash' in a) out.spec_hash = a.specHash;
  return out;
}

export function planDocument(r: Pick<PlanResult, 'actions' | 'held' | 'unknown' | 'drained'> & Partial<Pick<PlanResult, 'notAdmitted'>>): PlanDocument {
  return {
    drained: r.drained,
    actions: r.actions.map(actionJson),
    held: r.held.map((h) => ({ ...actionJson(h.action), due_at: h.until, failures: h.failures, last_error: h.lastError ?? null })),
    not_admitted: (r.notAdmitted ?? []).map((n) => ({ ...actionJson(n.action), not_admitted: n.reason })),
    unknown_runtimes: r.unknown.map((u) => ({ runtime: u.runtime, error: u.error, components: [...u.components] })),
  };
}

/**
 * `plan --check`: the node is not settled while an action is due, held back by a backoff or by
 * the host's capacity (not admitted), or cannot be decided because a runtime that components need cannot list. A runtime with no
 * component on it (podman missing on a VM-only node) does not count.
 */
export function planPending(p: PlanDocument): boolean {
  return p.actions.length > 0 || p.held.length > 0 || p.not_admitted.length > 0 || p.unknown_runtimes.some((u) => u.components.length > 0);
}

/** `service/component` of an action, or its workload when it has no component (an unlabelled orphan). */
export const actionTarget = (a: PlanActionJson): string => (a.service && a.component ? keyString({ service: a.service, component: a.component }) : a.workload);
