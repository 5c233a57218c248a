/** Builds the runtime adapters from the settings. */
import type { AgentConfig } from '../config/config.js';
import { vmPaths } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import { PodmanRuntime } from '../runtime/podman.js';
import { QemuRuntime } from '../runtime/qemu/runtime.js';
import type { Runtime } from '../runtime/types.js';

export function buildRuntimes(cfg: AgentConfig, agentId: string): Map<RuntimeKind, Runtime> {
  const env: Record<string, string> = {};
  if (cfg.podman.containers_conf) env.CONTAINERS_CONF = cfg.podman.containers_conf;
  const paths = vmPaths(cfg);
  return new Map<RuntimeKind, Runtime>([
    ['container', new PodmanRuntime({ binary: cfg.podman.binary, ociRuntime: cfg.podman.oci_runtime, ulimits: cfg.podman.ulimits, agentId, env, listTimeoutMs: cfg.podman.list_timeout_seconds * 1000, changeTimeoutMs: cfg.podman.timeout_seconds * 1000 })],
    [
      'unikernel',
      new QemuRuntime({
        binary: cfg.qemu.binary,
        imgBinary: cfg.qemu.img_binary,
        vmDir: paths.vmDir,
        agentId,
        accel: cfg.qemu.accel,
        bootTimeoutMs: cfg.qemu.boot_timeout_seconds * 1000,
        sshUser: cfg.qemu.ssh_user,
        sshKeyPath: paths.sshKey,
        baseCmdline: cfg.qemu.base_cmdline,
      }),
    ],
  ]);
}
