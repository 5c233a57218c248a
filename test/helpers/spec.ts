// Builders of the agent's inputs for fast tests: one ComponentSpec builder, the desired state and
// instance records built around it, and what a runtime lists for it. Every default is valid; a
// test overrides only the fields its case is about.
import { specHash, workloadName } from '../../src/identity.js';
import type { Assessment, RuntimeListing } from '../../src/agent/planner.js';
import type { ComponentSpec, ServiceSpec } from '../../src/manifest/schema.js';
import type { DesiredComponent, DesiredService, DesiredState, InstanceRecord } from '../../src/registry/index.js';
import type { Observed } from '../../src/runtime/types.js';

/** A valid component spec: a container sleeping (or a 64 MiB VM when runtime is unikernel). */
export function spec(service: string, name: string, over: Partial<ComponentSpec> = {}): ComponentSpec {
  const runtime = over.runtime ?? 'container';
  return {
    service,
    name,
    runtime,
    image: 'localhost/busybox:1',
    cmd: ['sleep', '1000'],
    env: {},
    memory: runtime === 'unikernel' ? 64 : undefined,
    vcpus: undefined,
    network: runtime === 'container' ? 'none' : 'auto',
    ports: [],
    volumes: [],
    restart: 'always',
    ...over,
  };
}

/** A service to `registry.desired.apply`: its components' `service` is set to its name. */
export function serviceSpec(name: string, components: ComponentSpec[], over: Partial<Omit<ServiceSpec, 'components'>> = {}): ServiceSpec {
  return { name, active: true, comment: '', ...over, components: components.map((c) => ({ ...c, service: name })) };
}

export const validRow = (s: ComponentSpec): DesiredComponent => ({ service: s.service, component: s.name, valid: true, spec: s });
export const invalidRow = (service: string, component: string, error = 'image: must be a string'): DesiredComponent => ({ service, component, valid: false, error });

export function service(name: string, active = true): DesiredService {
  return { name, active, comment: '', updatedAt: '2024-01-01T00:00:00.000Z' };
}

/** The desired state of these rows; every service they name is active unless `services` says otherwise. */
export function desired(components: DesiredComponent[], services?: DesiredService[]): DesiredState {
  const names = [...new Set(components.map((c) => c.service))];
  return { services: services ?? names.map((n) => service(n)), components };
}

/** An observed workload that belongs to spec `s`, running from its current hash unless overridden. */
export function observedFor(s: ComponentSpec, over: Partial<Observed> = {}): Observed {
  return {
    runtime: s.runtime,
    name: workloadName({ service: s.service, component: s.name }),
    id: `id-${s.service}-${s.name}`,
    key: { service: s.service, component: s.name },
    specHash: specHash(s),
    state: 'running',
    exitCode: undefined,
    startedAt: '2024-05-01T11:00:00.000Z',
    address: undefined,
    ...over,
  };
}

/** An observed workload with no component behind it unless `key` is given. */
export function rawObserved(over: Partial<Observed> & Pick<Observed, 'name'>): Observed {
  return {
    runtime: 'container',
    id: `id-${over.name}`,
    key: undefined,
    specHash: undefined,
    state: 'running',
    exitCode: undefined,
    startedAt: undefined,
    address: undefined,
    ...over,
  };
}

/** The agent's record of spec `s` running as observedFor(s) shows it (the spec kept with it), with no failures. */
export function record(s: ComponentSpec, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    workload: workloadName({ service: s.service, component: s.name }),
    service: s.service,
    component: s.name,
    runtime: s.runtime,
    handle: `id-${s.service}-${s.name}`,
    specHash: specHash(s),
    startedAt: '2024-05-01T11:00:00.000Z',
    restarts: 0,
    failures: 0,
    lastFailureAt: null,
    nextAttemptAt: null,
    lastError: null,
    failedSpecHash: null,
    spec: { ...s },
    ...over,
  };
}

export const ok = (...items: Observed[]): RuntimeListing => ({ ok: true, items });
export const failed = (error: string): RuntimeListing => ({ ok: false, error });

/** A planner assessment of web/api: an in-sync running container, nothing known beyond that. */
export function assessment(over: Partial<Assessment> = {}): Assessment {
  return {
    key: { service: 'web', component: 'api' },
    workload: 'web-api',
    runtime: 'container',
    desired: 'running',
    observed: 'running',
    drift: 'in-sync',
    reason: '',
    action: undefined,
    backoffUntil: undefined,
    lastError: undefined,
    startedAt: undefined,
    address: undefined,
    network: undefined,
    handle: undefined,
    ...over,
  };
}
