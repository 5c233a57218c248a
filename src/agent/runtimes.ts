/** Builds the runtime adapters from the settings. */
import type { AgentConfig } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import { PodmanRuntime } from '../runtime/podman.js';
import type { Runtime } from '../runtime/types.js';
import { UnavailableRuntime } from '../runtime/unavailable.js';

export function buildRuntimes(cfg: AgentConfig, agentId: string): Map<RuntimeKind, Runtime> {
  const env: Record<string, string> = {};
  if (cfg.podman.containers_conf) env.CONTAINERS_CONF = cfg.podman.containers_conf;
  return new Map<RuntimeKind, Runtime>([
    ['container', new PodmanRuntime({ binary: cfg.podman.binary, ociRuntime: cfg.podman.oci_runtime, ulimits: cfg.podman.ulimits, agentId, env })],
    ['unikernel', new UnavailableRuntime('unikernel', 'this agent has no QEMU runtime yet')],
  ]);
}
