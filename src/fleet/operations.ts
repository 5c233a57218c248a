/**
 * What the master asks of each node, over one SSH call per node: `status --json`,
 * `apply -f - --format json --origin master --prune --json` (the node's whole service set on
 * stdin, one registry transaction on the node), `events --json`. Each node's answer is parsed
 * and checked here; a node that fails is a result, never an exception that stops the others.
 */
import { z } from 'zod';
import type { FleetNode } from './inventory.js';
import type { PlacedService } from './placement.js';
import { eachNode } from './pool.js';
import { NodeError, runOnNode, type ExecOutput } from './transport.js';
import { parseDuration } from '../duration.js';

export interface CallOptions {
  timeoutMs: number;
  parallel: number;
}

export type NodeResult<T> = { node: string; ok: true; value: T } | { node: string; ok: false; kind: string; error: string };

/** The node's own error line (`agent: …`), or its exit code when it printed none. */
function remoteError(node: FleetNode, out: ExecOutput): NodeError {
  const text = out.stderr.trim().split('\n').filter(Boolean).slice(0, 6).join(' / ').replace(/^agent: /, '');
  return new NodeError(node.name, 'remote', `the agent exited ${out.code}${text ? `: ${text}` : ''}`);
}

function parseJson<T>(node: FleetNode, schema: z.ZodType<T>, out: ExecOutput, what: string): T {
  let doc: unknown;
  try {
    doc = JSON.parse(out.stdout);
  } catch {
    throw new NodeError(node.name, 'remote', `${what} printed no JSON (is the node's agent too old? first output: ${out.stdout.slice(0, 120) || out.stderr.slice(0, 120)})`);
  }
  const r = schema.safeParse(doc);
  if (!r.success) throw new NodeError(node.name, 'remote', `${what} printed JSON of an unexpected shape: ${r.error.issues[0]?.message ?? ''}`);
  return r.data;
}

async function onEach<T>(nodes: FleetNode[], opts: CallOptions, task: (n: FleetNode) => Promise<T>): Promise<NodeResult<T>[]> {
  const settled = await eachNode(nodes, opts.parallel, task);
  return settled.map((s, i) => {
    const node = nodes[i]!.name;
    if (s.ok) return { node, ok: true, value: s.value };
    const kind = s.error instanceof NodeError ? s.error.kind : 'error';
    const error = s.error instanceof NodeError ? s.error.message.replace(`node ${node}: `, '') : s.error.message;
    return { node, ok: false, kind, error };
  });
}

// ---- status

const StatusJsonSchema = z.object({
  agent: z.object({ running: z.boolean(), last_pass_at: z.string().nullable().optional() }),
  runtimes: z.record(z.string(), z.object({ ok: z.boolean(), error: z.string().nullable() })),
  components: z.array(z.object({ service: z.string().nullable().optional(), component: z.string().nullable().optional(), drift: z.string(), reason: z.string().nullable().optional() })),
});

export interface NodeStatus {
  agentRunning: boolean;
  lastPassAt: string | null;
  inSync: number;
  drifted: number;
  runtimes: Record<string, { ok: boolean; error: string | null }>;
  driftedComponents: Array<{ component: string; drift: string; reason: string }>;
}

/** One node's `status --json`, summed up; throws NodeError when the node cannot answer. */
export async function nodeStatus(node: FleetNode, timeoutMs: number): Promise<NodeStatus> {
  const out = await runOnNode(node, [...node.agent, 'status', '--json'], { timeoutMs });
  if (out.code !== 0) throw remoteError(node, out);
  const s = parseJson(node, StatusJsonSchema, out, 'status --json');
  const drifted = s.components.filter((c) => c.drift !== 'in-sync');
  return {
    agentRunning: s.agent.running,
    lastPassAt: s.agent.last_pass_at ?? null,
    inSync: s.components.length - drifted.length,
    drifted: drifted.length,
    runtimes: s.runtimes,
    driftedComponents: drifted.map((c) => ({ component: `${c.service ?? '-'}/${c.component ?? '-'}`, drift: c.drift, reason: c.reason ?? '' })),
  };
}

export function fleetStatus(nodes: FleetNode[], opts: CallOptions): Promise<NodeResult<NodeStatus>[]> {
  return onEach(nodes, opts, (node) => nodeStatus(node, opts.timeoutMs));
}

// ---- apply / plan

const ApplyJsonSchema = z.object({
  created: z.array(z.string()),
  updated: z.array(z.object({ name: z.string(), changes: z.array(z.string()) })),
  unchanged: z.array(z.string()),
  pruned: z.array(z.string()),
  dry_run: z.boolean(),
});
export type ApplyResult = z.output<typeof ApplyJsonSchema>;

/** The argv a node runs to take its whole service set from stdin (see docs/fleet.md). */
export function applyArgv(node: FleetNode, opts: { dryRun: boolean; allowEmpty: boolean }): string[] {
  return [...node.agent, 'apply', '-f', '-', '--format', 'json', '--origin', 'master', '--prune', ...(opts.allowEmpty ? ['--allow-empty'] : []), ...(opts.dryRun ? ['--dry-run'] : []), '--json'];
}

export function fleetApply(
  nodes: FleetNode[],
  perNode: Map<string, PlacedService[]>,
  opts: CallOptions & { dryRun: boolean; allowEmpty: boolean },
): Promise<NodeResult<ApplyResult>[]> {
  return onEach(nodes, opts, async (node) => {
    const set = (perNode.get(node.name) ?? []).map((s) => s.manifest);
    const out = await runOnNode(node, applyArgv(node, opts), { stdin: JSON.stringify(set), timeoutMs: opts.timeoutMs });
    if (out.code !== 0) throw remoteError(node, out);
    return parseJson(node, ApplyJsonSchema, out, 'apply --json');
  });
}

// ---- events

const EventsJsonSchema = z.array(
  z.object({
    at: z.string(),
    service: z.string().nullable(),
    component: z.string().nullable(),
    workload: z.string().nullable(),
    action: z.string(),
    reason: z.string(),
    outcome: z.string(),
    message: z.string(),
  }),
);
export type NodeEvent = z.output<typeof EventsJsonSchema>[number] & { node: string };

export async function fleetEvents(nodes: FleetNode[], limit: number, opts: CallOptions): Promise<{ events: NodeEvent[]; failures: Array<NodeResult<never>> }> {
  const results = await onEach(nodes, opts, async (node) => {
    const out = await runOnNode(node, [...node.agent, 'events', '--json', '-n', String(limit)], { timeoutMs: opts.timeoutMs });
    if (out.code !== 0) throw remoteError(node, out);
    return parseJson(node, EventsJsonSchema, out, 'events --json').map((e) => ({ ...e, node: node.name }));
  });
  return { events: mergeByTime(results.flatMap((r) => (r.ok ? [r.value] : [])), limit), failures: results.filter((r): r is NodeResult<never> => !r.ok) };
}

/** The newest `limit` events of all nodes, newest first (ties keep node order). */
export function mergeByTime(perNode: NodeEvent[][], limit: number): NodeEvent[] {
  return perNode
    .flat()
    .map((e, i) => ({ e, i, t: Date.parse(e.at) }))
    .sort((a, b) => b.t - a.t || a.i - b.i)
    .slice(0, limit)
    .map((x) => x.e);
}

/**
 * A fleet timeout as milliseconds: a duration as every other flag takes it (src/duration.ts: `500ms`,
 * `30s`, `2m`, `1h30m`) or, as fleet flags always took, a bare number of seconds; above 0, at most a day.
 */
export function parseTimeout(text: string): number | undefined {
  const bare = /^\d+(?:\.\d+)?$/.test(text.trim()) ? Number(text.trim()) * 1000 : undefined;
  const ms = parseDuration(text) ?? bare;
  return ms !== undefined && ms > 0 && ms <= 24 * 3600_000 ? ms : undefined;
}
