/**
 * What every doctor check is given: the settings, the adapters the CLI built (the doctor never
 * builds them itself: only src/cli/compose.ts does), and the registry's desired state, read once
 * and shared. Plus the one helper the tool checks share: a bounded `--version` call.
 */
import { statSync } from 'node:fs';
import type { AgentConfig, VmPaths } from '../../config/config.js';
import type { HostNet } from '../../net/types.js';
import { Registry } from '../../registry/index.js';
import type { DesiredState } from '../../registry/desired.js';
import { failureLine, runBounded } from '../../runtime/command.js';
import type { Runtime } from '../../runtime/types.js';

export interface DoctorContext {
  cfg: AgentConfig;
  paths: VmPaths;
  /** The podman runtime with the agent's own flags, labelled with `probeAgentId`. */
  containers: Runtime;
  hostNet: HostNet;
  /** The throwaway container's name: unique per run (`agent-doctor-<pid>-<random>`). */
  probeName: string;
  probeAgentId: string;
  /** The image the throwaway container runs: the one the demo and the tests use. */
  probeImage: string;
  /** The registry's desired state, read once for all checks. */
  desired: () => Promise<DesiredRead>;
}

export type DesiredRead =
  | { state: 'absent' }
  | { state: 'unreadable'; message: string }
  | { state: 'read'; desired: DesiredState };

/** Reads the registry read-only, as it is (no migration): the doctor never writes it. */
export function desiredReader(path: string): () => Promise<DesiredRead> {
  let memo: Promise<DesiredRead> | undefined;
  const read = async (): Promise<DesiredRead> => {
    if (!statSync(path, { throwIfNoEntry: false })) return { state: 'absent' };
    try {
      const r = Registry.open(path, { readonly: true, asIs: true, create: false });
      try {
        return { state: 'read', desired: r.desired.read() };
      } finally {
        r.close();
      }
    } catch (err) {
      return { state: 'unreadable', message: (err as Error).message };
    }
  };
  return () => (memo ??= read());
}

/** Every external command of the doctor is bounded by this (a tool that hangs is killed). */
export const TOOL_TIMEOUT_MS = 5000;

export type ToolAnswer = { ok: true; version: string } | { ok: false; why: string };

/** `binary args` (default `--version`): its first output line, or why it did not answer. */
export async function toolVersion(binary: string, args: string[] = ['--version']): Promise<ToolAnswer> {
  try {
    const r = await runBounded(binary, args, { runtime: 'doctor', operation: 'version', timeoutMs: TOOL_TIMEOUT_MS, read: true }, { reject: false });
    if (r.code === 'ENOENT') return { ok: false, why: `${binary} is not installed (or not at that path)` };
    if (r.failed) return { ok: false, why: `${binary} ${args.join(' ')} failed: ${failureLine(r)}` };
    const first = `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
    return { ok: true, version: first.trim() };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}
