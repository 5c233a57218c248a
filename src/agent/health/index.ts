/** The health monitor as `agent run` builds it from the settings: the host's prober, `health.parallelism`. */
import type { Logger } from 'pino';
import type { AgentConfig } from '../../config/config.js';
import type { RuntimeKind } from '../../manifest/schema.js';
import type { Registry } from '../../registry/index.js';
import type { Runtime } from '../../runtime/types.js';
import type { MetricsSink } from '../metrics-sink.js';
import { HealthMonitor } from './monitor.js';
import { HostProber } from './probe.js';

export { HealthMonitor } from './monitor.js';
export { healthTargets } from './targets.js';
export { killProbes } from './spawn.js';

export function createHealthMonitor(o: { config: AgentConfig; registry: Registry; runtimes: Map<RuntimeKind, Runtime>; log: Logger; metrics?: MetricsSink | undefined; onChange: (why: string) => void }): HealthMonitor {
  const env = o.config.podman.containers_conf ? { ...process.env, CONTAINERS_CONF: o.config.podman.containers_conf } : undefined;
  const prober = new HostProber({ podman: { binary: o.config.podman.binary, env }, runtimes: o.runtimes });
  return new HealthMonitor({ registry: o.registry, prober, parallelism: o.config.health.parallelism, log: o.log.child({ component: 'health' }), metrics: o.metrics, onChange: o.onChange });
}
