/**
 * The composition root: the concrete adapters (podman, QEMU, the host's `ip`/`nft`) built from the
 * settings. The only place that names them; src/agent is given them through its interfaces.
 */
import type { AgentConfig } from '../config/config.js';
import { vmPaths } from '../config/config.js';
import type { RuntimeKind } from '../manifest/schema.js';
import { hostNet } from '../net/host.js';
import type { HostNet } from '../net/types.js';
import { PodmanRuntime } from '../runtime/podman.js';
import { defaultApiSocket, type RuntimeLog } from '../runtime/podman-service.js';
import { QemuRuntime } from '../runtime/qemu/runtime.js';
import { scopeMode } from '../runtime/qemu/scope.js';
import { hostSystemd } from '../runtime/qemu/scope-unit.js';
import type { BootProgress, Runtime } from '../runtime/types.js';

/** What the agent drives on this host: one runtime per kind, and the VM networking. */
export interface HostAdapters {
  runtimes: Map<RuntimeKind, Runtime>;
  hostNet: HostNet;
}

/**
 * What a command wants to hear from the adapters besides their log lines: VM boot times (`agent
 * run`'s metrics), boots waiting for SSH (`run --once`'s progress output).
 */
export interface HostHooks {
  onVmBooted?: ((seconds: number) => void) | undefined;
  onBootProgress?: ((p: BootProgress) => void) | undefined;
}

/** `log`: where the adapters' own lines go (the podman API service's); `log` and `hooks`: none for one-shot commands. */
export function buildHost(cfg: AgentConfig, agentId: string, log?: RuntimeLog, hooks: HostHooks = {}): HostAdapters {
  const net = buildHostNet();
  return { runtimes: buildRuntimes(cfg, agentId, net, log, hooks), hostNet: net };
}


/** The host's VM networking alone (`agent net up/down/status`). */
export function buildHostNet(): HostNet {
  return hostNet();
}

function buildRuntimes(cfg: AgentConfig, agentId: string, net: HostNet, log: RuntimeLog | undefined, { onVmBooted, onBootProgress }: HostHooks): Map<RuntimeKind, Runtime> {
  const env: Record<string, string> = {};
  if (cfg.podman.containers_conf) env.CONTAINERS_CONF = cfg.podman.containers_conf;
  const paths = vmPaths(cfg);
  return new Map<RuntimeKind, Runtime>([
    [
      'container',
      new PodmanRuntime({
        binary: cfg.podman.binary,
        ociRuntime: cfg.podman.oci_runtime,
        ulimits: cfg.podman.ulimits,
        agentId,
        env,
        listTimeoutMs: cfg.podman.list_timeout_seconds * 1000,
        changeTimeoutMs: cfg.podman.timeout_seconds * 1000,
        // The API serves `agent run` only (it starts the service in watch): one-shot commands keep the CLI.
        api: cfg.podman.api,
        apiSocket: defaultApiSocket(paths.home, agentId),
        apiSocketExternal: cfg.podman.api_socket,
        log,
      }),
    ],
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
        taps: net,
        scope: scopeMode(cfg.qemu.systemd_scope, hostSystemd, cfg.qemu.overhead_mib),
        onBooted: onVmBooted && ((_name, seconds) => onVmBooted(seconds)),
        onBootProgress,
      }),
    ],
  ]);
}
