/**
 * What every command shares: settings from flags/env/file, the registry opened for one command,
 * printing, and `service/component` resolved to a workload.
 */
import type { Command } from 'commander';
import { loadConfig, type AgentConfig } from '../config/config.js';
import { workloadName } from '../identity.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { Registry } from '../registry/index.js';

export interface GlobalOpts {
  db?: string;
  config?: string;
  logLevel?: string;
}

export function settings(cmd: Command): AgentConfig {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  return loadConfig({ configPath: g.config, env: process.env, flags: { db: g.db, logLevel: g.logLevel }, cwd: process.cwd() });
}

/** Only `apply` (and `run`) create a missing registry: elsewhere a missing file is a wrong path. */
export function withRegistry<T>(cfg: AgentConfig, fn: (r: Registry) => Promise<T> | T, opts: { create?: boolean; readonlyAsIs?: boolean } = {}): Promise<T> {
  const registry = Registry.open(cfg.db, { create: opts.create ?? false, ...(opts.readonlyAsIs ? { readonly: true, asIs: true } : {}) });
  return Promise.resolve()
    .then(() => fn(registry))
    .finally(() => registry.close());
}

export { print } from './output.js';

/** `service/component` to the component's runtime and workload name, from the registry. */
export function target(r: Registry, ref: string): { runtime: 'container' | 'unikernel'; workload: string } {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(ref);
  if (!m) throw new ValidationError('target', [{ field: 'SERVICE/COMPONENT', rule: `must look like web/api, got '${ref}'` }]);
  const c = r.desired.read().components.find((x) => x.service === m[1] && x.component === m[2]);
  if (!c) throw new NotFoundError(`no component ${ref} in the registry`);
  if (!c.valid) throw new NotFoundError(`component ${ref} is invalid in the registry: ${c.error}`);
  return { runtime: c.spec.runtime, workload: workloadName({ service: c.service, component: c.component }) };
}
