/**
 * The agent's Prometheus metrics (prom-client), on a registry of its own (never prom-client's
 * global one, so two agents in one process, or a test, never share series). Implements the
 * MetricsSink the agent layer reports to. Counters and histograms are fed as things happen; the
 * gauges that describe state are computed at scrape time (collect callbacks) from the last pass's
 * report, so a scrape always shows one pass's consistent picture and never a half-updated one.
 * Served by the TCP listener (src/api/metrics-listener.ts) and the agent's unix-socket API.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RUNTIMES, type RuntimeKind } from '../manifest/schema.js';
import type { ActionType } from './planner.js';
import { ACTION_RESULTS, ACTION_TYPES, DRIFTS, LEASE_KINDS, type ActionResult, type MetricsSink, type PassReport } from './metrics-sink.js';

/** Signal → action issued: a pass from the live view takes milliseconds; seconds mean a slow runtime or a queue. */
export const REACTION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** A pass: ms from the live view, up to a runtime's list timeout when one hangs. */
export const PASS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Launch → SSH ready: 3-6 s under TCG here, up to the boot timeout (90 s by default). */
export const VM_BOOT_BUCKETS = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 90, 120];

export class AgentMetrics implements MetricsSink {
  readonly registry = new Registry();
  private last: PassReport | undefined;
  private readonly passSeconds: Histogram;
  private readonly actions: Counter<'action' | 'outcome'>;
  private readonly restarts: Counter<'runtime'>;
  private readonly reaction: Histogram;
  private readonly vmBoot: Histogram;
  private readonly healthChecks: Counter<'result'>;
  private readonly unhealthy: Gauge;
  private readonly probeSeconds: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const last = (): PassReport | undefined => this.last;

    new Gauge({
      name: 'mcp_agent_workloads',
      help: 'Components (and orphans) by runtime and drift, as the last reconcile pass assessed them',
      labelNames: ['runtime', 'drift'],
      registers,
      collect() {
        this.reset();
        const r = last();
        if (!r) return;
        // Every drift of every runtime, 0 when none: a series that vanishes reads as "no data", not 0.
        for (const runtime of Object.keys(r.runtimesUp)) for (const drift of DRIFTS) this.set({ runtime, drift }, 0);
        for (const w of r.workloads) this.set({ runtime: w.runtime, drift: w.drift }, w.count);
      },
    });
    new Gauge({
      name: 'mcp_agent_backoff_workloads',
      help: 'Components whose next action waits for a backoff to end (last pass)',
      registers,
      collect() {
        this.set(last()?.backoff ?? 0);
      },
    });
    new Gauge({
      name: 'mcp_agent_runtime_up',
      help: 'Whether the runtime listed its workloads in the last pass (1) or could not (0: its components are unknown)',
      labelNames: ['runtime'],
      registers,
      collect() {
        this.reset();
        for (const [runtime, up] of Object.entries(last()?.runtimesUp ?? {})) this.set({ runtime }, up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mcp_agent_leases',
      help: 'Leases held in the registry by kind (host ports, bridge IPs), as of the last pass',
      labelNames: ['kind'],
      registers,
      collect() {
        const r = last();
        for (const kind of LEASE_KINDS) this.set({ kind }, r?.leases[kind] ?? 0);
      },
    });
    // Admission (admission.ts): capacity = MemTotal - host.reserved_memory_mib, online CPUs x
    // host.cpu_overcommit; allocated = what this agent's workloads hold (QEMU's overhead included).
    new Gauge({
      name: 'mcp_agent_memory_bytes',
      help: 'Host memory admission counts with: capacity (MemTotal minus the reserve) and allocated (this agent\'s workloads, as of the last pass)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const m = last()?.resources?.memory;
        if (m) for (const [state, mib] of [['capacity', m.capacity_mib], ['allocated', m.allocated_mib]] as const) this.set({ state }, mib * 1024 * 1024);
      },
    });
    new Gauge({
      name: 'mcp_agent_vcpus',
      help: 'vCPUs admission counts with: capacity (online CPUs times the overcommit) and allocated (this agent\'s workloads, as of the last pass)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const v = last()?.resources?.vcpus;
        if (v) for (const [state, n] of [['capacity', v.capacity], ['allocated', v.allocated]] as const) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'mcp_agent_last_pass_timestamp_seconds',
      help: 'When the last reconcile pass ended (seconds since the epoch; 0 before the first)',
      registers,
      collect() {
        const r = last();
        this.set(r ? r.endedAt.getTime() / 1000 : 0);
      },
    });
    this.passSeconds = new Histogram({
      name: 'mcp_agent_reconcile_duration_seconds',
      help: 'Time a reconcile pass took: observe, plan, housekeeping, dispatch (not the actions themselves)',
      buckets: PASS_BUCKETS,
      registers,
    });
    this.actions = new Counter({
      name: 'mcp_agent_actions_total',
      help: 'Actions ended, by type (start, restart, replace, remove, adopt) and outcome (ok, failed, interrupted)',
      labelNames: ['action', 'outcome'],
      registers,
    });
    this.restarts = new Counter({
      name: 'mcp_agent_restarts_total',
      help: 'Workloads restarted after they exited (restart actions that succeeded), by runtime',
      labelNames: ['runtime'],
      registers,
    });
    this.reaction = new Histogram({
      name: 'mcp_agent_reaction_seconds',
      help: 'From the signal that woke a pass (runtime event, registry change, timer) to each action it issued',
      buckets: REACTION_BUCKETS,
      registers,
    });
    this.vmBoot = new Histogram({
      name: 'mcp_agent_vm_boot_seconds',
      help: 'From QEMU launched to the guest answering SSH with its pinned host key',
      buckets: VM_BOOT_BUCKETS,
      registers,
    });
    this.healthChecks = new Counter({
      name: 'mcp_agent_health_checks_total',
      help: 'Health probes ended, by result (success, failure)',
      labelNames: ['result'],
      registers,
    });
    this.unhealthy = new Gauge({ name: 'mcp_agent_unhealthy_workloads', help: 'Workloads whose health check failed failure_threshold times in a row, now', registers });
    this.probeSeconds = new Histogram({
      name: 'mcp_agent_health_probe_seconds',
      help: 'How long a health probe took (nsenter + nc/curl, podman exec, SSH exec, or a connect), its wait for a slot not counted',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    for (const result of ['success', 'failure']) this.healthChecks.inc({ result }, 0);
    // Counters start at 0 for every label set: rate() and "did it rise" need the series before the first event.
    for (const action of ACTION_TYPES) for (const outcome of ACTION_RESULTS) this.actions.inc({ action, outcome }, 0);
    for (const runtime of RUNTIMES) this.restarts.inc({ runtime }, 0);
  }

  /** The Content-Type of `text()`'s exposition. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition (Prometheus text format 0.0.4), computed now. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  passDone(r: PassReport): void {
    this.last = r;
    this.passSeconds.observe(r.seconds);
  }

  actionDone(action: ActionType, runtime: RuntimeKind, result: ActionResult): void {
    this.actions.inc({ action, outcome: result });
    if (action === 'restart' && result === 'ok') this.restarts.inc({ runtime });
  }

  reacted(seconds: number): void {
    this.reaction.observe(seconds);
  }

  vmBooted(seconds: number): void {
    this.vmBoot.observe(seconds);
  }

  healthChecked(result: 'success' | 'failure', seconds: number): void {
    this.healthChecks.inc({ result });
    this.probeSeconds.observe(seconds);
  }

  unhealthyWorkloads(count: number): void {
    this.unhealthy.set(count);
  }
}
