/**
 * `fleet apply --wait`: after the apply, poll each applied node's `status --json` (the same SSH
 * transport, one call at a time per node) until every component of that node is in sync, or
 * until one shared deadline (`--wait-timeout`, counted from the start of the wait). A node that
 * cannot be reached during the wait is retried until the deadline, never fails the others, and
 * counts as not converged if it never answers in sync. Progress goes to stderr (cli/live-lines.ts):
 * one line per node redrawn in place on a TTY, otherwise a plain line whenever a node's count changes.
 */
import type { FleetNode } from './inventory.js';
import { nodeStatus, type NodeStatus } from './operations.js';
import { eachNode } from './pool.js';
import { NodeError } from './transport.js';

export interface WaitOptions {
  /** Bound of one status call (the apply's `--timeout`). */
  callTimeoutMs: number;
  /** Bound of the whole wait, for every node. */
  waitTimeoutMs: number;
  parallel: number;
  /** Pause between two status calls to one node. */
  intervalMs?: number;
  onProgress?: (node: string, state: WaitProgress) => void;
}

export type WaitProgress = { kind: 'status'; status: NodeStatus } | { kind: 'error'; error: string };

export interface WaitResult {
  node: string;
  converged: boolean;
  /** The node's last answer, if it gave one. */
  status: NodeStatus | null;
  /** The last failure to reach the node, when its last call failed. */
  error: string | null;
  waitedMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitForConvergence(nodes: FleetNode[], opts: WaitOptions): Promise<WaitResult[]> {
  const start = Date.now();
  const deadline = start + opts.waitTimeoutMs;
  const interval = opts.intervalMs ?? 1000;
  const settled = await eachNode(nodes, opts.parallel, async (node): Promise<WaitResult> => {
    let status: NodeStatus | null = null;
    let error: string | null = null;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return { node: node.name, converged: false, status, error, waitedMs: Date.now() - start };
      try {
        status = await nodeStatus(node, Math.min(opts.callTimeoutMs, left));
        error = null;
        opts.onProgress?.(node.name, { kind: 'status', status });
        if (status.drifted === 0) return { node: node.name, converged: true, status, error, waitedMs: Date.now() - start };
      } catch (err) {
        error = err instanceof NodeError ? `${err.kind}: ${err.message.replace(`node ${node.name}: `, '')}` : String(err instanceof Error ? err.message : err);
        opts.onProgress?.(node.name, { kind: 'error', error });
      }
      await sleep(Math.max(0, Math.min(interval, deadline - Date.now())));
    }
  });
  return settled.map((s, i) => (s.ok ? s.value : { node: nodes[i]!.name, converged: false, status: null, error: s.error.message, waitedMs: Date.now() - start }));
}

/** A node's state in a few words, for progress (rendered by src/cli/live-lines.ts). */
export function progressText(state: WaitProgress): string {
  if (state.kind === 'error') return `waiting (${state.error})`;
  const s = state.status;
  const total = s.inSync + s.drifted;
  if (s.drifted === 0) return `in sync (${total} components)`;
  return `${s.inSync}/${total} in sync${s.agentRunning ? '' : ', agent not running'}`;
}

/** The final line of one node: converged, or why not (its drifted components). */
export function waitLine(r: WaitResult, waitTimeoutMs: number): string {
  if (r.converged) return `${r.node}: converged (${r.status?.inSync ?? 0} in sync)`;
  const head = `${r.node}: NOT CONVERGED after ${Math.round(waitTimeoutMs / 1000)}s`;
  if (!r.status) return `${head}: never answered (${r.error ?? 'no answer'})`;
  const drifted = r.status.driftedComponents.map((c) => `${c.component} ${c.drift}${c.reason ? ` (${c.reason})` : ''}`).join('; ');
  const notes = [r.status.agentRunning ? '' : 'agent not running', r.error ? `last call failed: ${r.error}` : ''].filter(Boolean);
  return `${head}: ${r.status.drifted} drifted: ${drifted}${notes.length ? ` [${notes.join('; ')}]` : ''}`;
}
