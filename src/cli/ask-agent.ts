/**
 * Which source `status`, `plan` and `events` read: the running agent of this registry over its
 * local API (its live view: no runtime listing), or, with `--live` or no agent, a live computation
 * as before. Both give the same documents (see src/agent/status.ts).
 */
import { existsSync } from 'node:fs';
import type { z } from 'zod';
import type { AgentConfig } from '../config/config.js';
import { askAgent, type AgentTarget } from '../api/client.js';
import { apiSocketPath } from '../api/socket-path.js';

export const agentTarget = (cfg: AgentConfig): AgentTarget => ({ socketPath: apiSocketPath(cfg), registryPath: cfg.db });

export const LIVE_HELP = 'compute from fresh runtime listings even when an agent runs (default: ask the running agent, which answers from its live view)';

/**
 * The agent's document, or the live one: `live` skips the agent; no agent (or an unusable answer)
 * falls back silently. `schema` may be given as a loader: building the documents' schemas is a
 * good part of a CLI call's start, and without an agent socket nothing is checked against them.
 */
export async function fromAgentOrLive<T>(
  cfg: AgentConfig,
  o: { live?: boolean | undefined; path: string; schema: z.ZodType<T> | (() => Promise<z.ZodType<T>>) },
  compute: () => Promise<T>,
): Promise<T> {
  const target = agentTarget(cfg);
  if (o.live || !existsSync(target.socketPath)) return compute();
  const schema = o.schema;
  return (await askAgent(target, o.path, typeof schema === 'function' ? schema : () => Promise.resolve(schema))) ?? compute();
}
