/**
 * The operator's drift view: one row per component (and per orphan workload). One builder
 * (statusReport) makes it from an assessment, whichever way that was made: live from the registry
 * and fresh runtime listings (buildStatus, `status --live` or no agent), or by the running agent
 * from its live view (the local API). Both give the same document; only the times differ.
 */
import type { AgentConfig } from '../config/config.js';
import { keyString } from '../errors.js';
import type { RuntimeKind } from '../manifest/schema.js';
import { identityLive } from './process-identity.js';
import { registryWritability, type AgentEvent, type Registry, type RegistryWritability, type SourceState } from '../registry/index.js';
import type { Runtime } from '../runtime/types.js';
import type { HostNet } from '../net/types.js';
import type { NodeResources } from './admission.js';
import type { Drift } from './planner.js';
import { assess, type Assessed } from './reconciler.js';

export interface StatusRow {
  service: string;
  component: string;
  workload: string;
  runtime: RuntimeKind | null;
  desired: 'running' | 'absent';
  observed: string;
  drift: Drift;
  reason: string;
  /** What the next reconcile would do about it, if anything. */
  next_action: string | null;
  backoff_until: string | null;
  /** The last failure while the component is not in sync (kept after its backoff ends); null once in sync. */
  last_error: string | null;
  /** When the observed workload started, as its runtime says. */
  started_at: string | null;
  address: string | null;
  /** VMs: 'bridge' or 'slirp'. */
  network: string | null;
  handle: string | null;
  restarts: number;
  /** The health check's verdict of the run observed now: null when it has none, or it is not running or not probed yet. */
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  /** The last probe's output, and since when the verdict holds; null with `health`. */
  health_output: string | null;
  health_since: string | null;
  last_event: { at: string; action: string; outcome: string; message: string } | null;
  /** When what this row shows was observed (a listing, an event, an action's result); null: not observed (runtime unknown). */
  observed_at: string | null;
  observed_age_seconds: number | null;
}

/** A runtime's listing: whether it answered, and when the listing shown (fresh, or the agent's view) was made. */
export interface RuntimeHealth {
  ok: boolean;
  error: string | null;
  observed_at: string | null;
  age_seconds: number | null;
}

export interface AgentLiveness {
  /** A live `agent run` holds the registry's reconciler claim. */
  running: boolean;
  pid: number | null;
  last_pass_at: string | null;
  /** A live `agent run --once` holds it. */
  once_in_progress: boolean;
}

/** The node as a whole: drained (`agent drain`: workloads stopped, nothing starts) and since when. */
export interface NodeState {
  drained: boolean;
  drained_since: string | null;
}

export interface StatusReport {
  /** The file, and whether it takes writes (a full disk: the agent keeps its bookkeeping in memory). */
  registry: { path: string } & RegistryWritability;
  agent: AgentLiveness;
  node: NodeState;
  runtimes: Partial<Record<RuntimeKind, RuntimeHealth>>;
  /** Where desired state comes from besides `apply` (the NATS source), and how it is; null: none. */
  source: SourceState | null;
  /** The node's capacity and what this agent's workloads hold (admission.ts); null: MemTotal unreadable. */
  resources: NodeResources | null;
  summary: Record<string, number>;
  components: StatusRow[];
}

/**
 * Running = a live process holds the reconciler claim as `run` (pid and start time checked, so a
 * reused pid does not count). The last pass comes from the heartbeat, which `run --once` writes too.
 */
export function agentLiveness(registry: Registry): AgentLiveness {
  const claim = registry.meta.reconciler();
  const hb = registry.meta.heartbeat();
  const live = claim !== undefined && identityLive(claim);
  const running = live && claim.mode === 'run';
  return {
    running,
    pid: live ? claim.pid : (hb?.pid ?? null),
    last_pass_at: hb?.at ?? null,
    // A one-shot pass under way (`run --once`, e.g. from cron) is reconciling too, just not for long.
    once_in_progress: live && claim.mode === 'run --once',
  };
}

function nodeState(registry: Registry): NodeState {
  const d = registry.drain.state();
  return { drained: d !== undefined, drained_since: d?.since || null };
}

/** What the status document takes from the registry and the host besides the assessment. */
interface RegistryFacts {
  lastEvents: Map<string, AgentEvent>;
  registry: StatusReport['registry'];
  agent: AgentLiveness;
  node: NodeState;
  source: SourceState | null;
}

const registryFacts = (registry: Registry): RegistryFacts => ({
  lastEvents: registry.events.latestPerComponent(),
  registry: { path: registry.path, ...registryWritability(registry.path) },
  agent: agentLiveness(registry),
  node: nodeState(registry),
  source: registry.source.state() ?? null,
});

/**
 * Status computed live: fresh listings of every runtime and a look at the bridge (no agent needed).
 * What the document reads from the registry is read while the runtimes list.
 */
export async function buildStatus(registry: Registry, runtimes: Map<RuntimeKind, Runtime>, config: AgentConfig, hostNet: HostNet): Promise<StatusReport> {
  let facts: RegistryFacts | undefined;
  const assessed = await assess(registry, runtimes, config, hostNet, new Date(), undefined, () => (facts = registryFacts(registry)));
  return statusReport(registry, assessed, Date.now(), facts);
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
/** Whole tenths of a second: an age, not a timestamp. */
const age = (ms: number | undefined, now: number): number | null => (ms === undefined ? null : Math.max(0, Math.round((now - ms) / 100) / 10));

/** The status document from an assessment (live or the agent's), with each observation's time and age at `now`. */
export function statusReport(registry: Registry, result: Assessed, now = Date.now(), facts = registryFacts(registry)): StatusReport {
  const instances = new Map(result.instances.map((i) => [i.workload, i]));
  const { lastEvents } = facts;

  const runtimeHealth: StatusReport['runtimes'] = {};
  const listings = result.listings;
  for (const [kind, l] of Object.entries(listings) as Array<[RuntimeKind, (typeof listings)[RuntimeKind]]>) {
    const at = result.times.runtimes[kind];
    if (l) runtimeHealth[kind] = { ok: l.ok, error: l.ok ? null : l.error, observed_at: iso(at), age_seconds: age(at, now) };
  }

  const components: StatusRow[] = result.assessments.map((a) => {
    const ev = lastEvents.get(keyString(a.key));
    const seen = a.runtime ? result.times.workload(a.runtime, a.workload) : undefined;
    return {
      service: a.key.service,
      component: a.key.component,
      workload: a.workload,
      runtime: a.runtime ?? null,
      desired: a.desired,
      observed: a.observed,
      drift: a.drift,
      reason: a.reason,
      next_action: a.action ? `${a.action.type} (${a.action.reason})` : null,
      backoff_until: a.backoffUntil ?? null,
      last_error: a.lastError ?? null,
      started_at: a.startedAt ?? null,
      address: a.address ?? null,
      network: a.network ?? null,
      handle: a.handle ? a.handle.slice(0, 12) : null,
      restarts: instances.get(a.workload)?.restarts ?? 0,
      health: a.health?.status ?? null,
      health_output: a.health?.output ?? null,
      health_since: a.health?.since ?? null,
      last_event: ev ? { at: ev.at, action: ev.action, outcome: ev.outcome, message: ev.message } : null,
      observed_at: iso(seen),
      observed_age_seconds: age(seen, now),
    };
  });
  const summary: Record<string, number> = {};
  for (const c of components) summary[c.drift] = (summary[c.drift] ?? 0) + 1;
  return {
    registry: facts.registry,
    agent: facts.agent,
    node: facts.node,
    runtimes: runtimeHealth,
    source: facts.source,
    resources: result.resources ?? null,
    summary,
    components,
  };
}

// The `plan --json` document is built in plan-report.ts (actions, held, unknown runtimes); these
// names stay importable from here, where the local API and `plan` first found them.
export { actionJson, planDocument, type PlanActionJson, type PlanDocument } from './plan-report.js';
