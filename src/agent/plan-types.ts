/**
 * The planner's vocabulary: drift states, actions, assessments, and the input and result of
 * `plan()` (planner.ts). Types only, so the CLI, the API and the executor can name them without
 * loading the planner.
 */
import type { ComponentKey } from '../errors.js';
import type { ComponentSpec, RuntimeKind } from '../manifest/schema.js';
import type { DesiredState, InstanceRecord, Lease } from '../registry/index.js';
import type { Observed } from '../runtime/types.js';
import type { AdmissionInput, NodeResources, NotAdmitted } from './admission.js';
import type { Housekeeping } from './housekeeping.js';
import type { BridgeFact, VmNetwork } from './network-drift.js';
import type { HealthVerdict } from './health/verdict.js';

export type Drift =
  | 'in-sync' // matches the registry
  | 'missing' // desired running, not there
  | 'stopped' // there, not running, and the restart policy wants it running
  | 'exited' // there, not running, and the restart policy says leave it
  | 'spec-changed' // running from another spec
  | 'network' // a VM running, but not on the network its spec asks for now (see network-drift.ts)
  | 'orphan' // ours, but no (active) component wants it
  | 'unknown' // its runtime could not list: never treated as missing
  | 'invalid' // the registry row is not a valid component
  | 'unhealthy' // running, but its health check failed failure_threshold times in a row (restarted unless restart = never)
  | 'pending' // in a transitional state (stopping, paused...), or its start does not fit the host (admission.ts)
  | 'drained'; // the node is drained (`agent drain`): stopped, or to be stopped; nothing starts (drain-plan.ts)

/** What starts a workload; a VM's carries the network it goes on (decided here, leased by placement). */
export interface StartLike { key: ComponentKey; workload: string; runtime: RuntimeKind; spec: ComponentSpec; specHash: string; network?: VmNetwork | undefined; reason: string }

/** What the reconcile would do. Reasons are for humans and land in the events log. */
export type Action =
  | ({ type: 'start' } & StartLike)
  /** `stopFirst`: the workload still runs (it is unhealthy): it is stopped, then started again. */
  | ({ type: 'restart'; stopFirst?: boolean } & StartLike)
  | ({ type: 'replace' } & StartLike)
  | { type: 'remove'; key: ComponentKey | undefined; workload: string; runtime: RuntimeKind; reason: string }
  /** A graceful stop that keeps the workload (its logs, a VM's exit record): the node is drained. */
  | { type: 'stop'; key: ComponentKey; workload: string; runtime: RuntimeKind; reason: string }
  | {
      type: 'adopt';
      key: ComponentKey;
      workload: string;
      runtime: RuntimeKind;
      handle: string;
      specHash: string;
      /** The desired spec, whose hash the workload carries: recorded as the spec it runs. */
      startedFrom: ComponentSpec;
      startedAt: string | undefined;
      reason: string;
    };

export type ActionType = Action['type'];

export interface Assessment {
  key: ComponentKey;
  workload: string;
  runtime: RuntimeKind | undefined;
  desired: 'running' | 'absent';
  /** The observed state, 'absent', or 'unknown' when the runtime could not list. */
  observed: string;
  drift: Drift;
  reason: string;
  action: Action | undefined;
  /** Set when an action is due but held back by the backoff. */
  backoffUntil: string | undefined;
  /**
   * The last failure of this component's current spec while it is not in sync (a failed start, an
   * exit the agent restarted): kept after its backoff ends, so an operator still sees why.
   */
  lastError: string | undefined;
  /** When the observed workload started, as its runtime says. */
  startedAt: string | undefined;
  address: string | undefined;
  network: string | undefined;
  handle: string | undefined;
  /** The health verdict of the run observed now; undefined: no check, not running, or not probed yet. */
  health?: HealthVerdict | undefined;
}

export type RuntimeListing = { ok: true; items: Observed[] } | { ok: false; error: string };

export interface PlanInput {
  desired: DesiredState;
  observed: Partial<Record<RuntimeKind, RuntimeListing>>;
  instances: InstanceRecord[];
  now: Date;
  /** A workload running this long in sync has its failure count reset. */
  stableAfterMs: number;
  /** The VM bridge as this pass saw it; without it, VM networks are not checked and no VM goes on it. */
  bridge?: BridgeFact | undefined;
  /** Components in flux (see `unitOf`): assessed, but no action or housekeeping of theirs this pass. */
  busy?: ReadonlySet<string>;
  /** The lease table, for lease collection; without it none is planned. */
  leases?: Lease[];
  /** Runtimes listed in full this pass: their garbage may be collected. */
  listedInFull?: RuntimeKind[];
  /** Health verdicts by workload (health/verdict.ts): the running agent's, or those stored in the registry. */
  health?: ReadonlyMap<string, HealthVerdict>;
  /** The host's capacity and the admission settings; without it every start is admitted. */
  admission?: AdmissionInput | undefined;
  /** The node is drained: running workloads are stopped, nothing starts (drain-plan.ts). */
  drained?: boolean;
  /** Workloads stopped for a drain: once undrained they start again whatever their restart policy. */
  stoppedByDrain?: ReadonlySet<string>;
}

/** An action that is due but waits for its component's backoff to end. */
export interface HeldAction {
  action: Action;
  /** When the backoff ends: the next pass after it takes the action. */
  until: string;
  failures: number;
  lastError: string | undefined;
}

/** A runtime that could not list this pass: its components are `unknown`, and nothing is done to them. */
export interface UnknownRuntime {
  runtime: RuntimeKind;
  error: string;
  /** The registry's components on it (sorted `service/component`); may be empty. */
  components: string[];
}

export interface PlanResult {
  assessments: Assessment[];
  /** The actions of components not in flux. */
  actions: Action[];
  /** Actions held back by a backoff (not in `actions`), in assessment order. */
  held: HeldAction[];
  /** Runtimes that could not list, or that components need and are not configured. */
  unknown: UnknownRuntime[];
  /** Starts, restarts and replaces that do not fit the host this pass (not in `actions`; their components are `pending`). */
  notAdmitted: NotAdmitted[];
  /** The node's capacity and allocation (admitted starts included); undefined without `admission` in the input. */
  resources: NodeResources | undefined;
  /** What the registry and the host need besides the actions, in the order it is done. */
  housekeeping: Housekeeping[];
  /**
   * The earliest time after `now` at which planning again could decide something new without
   * anything else changing: a backoff ending, or a workload becoming stable (its failures reset).
   * Undefined when nothing is due. The loop sets one timer for it (controller-runtime's RequeueAfter).
   * A boot deadline is not among them: a booting VM is a start under way in the executor, bounded
   * by the runtime's boot timeout, and the end of that action wakes the loop.
   */
  requeueAt: Date | undefined;
  /** The node is drained (PlanInput.drained): `plan` and `status` say so. */
  drained: boolean;
}
