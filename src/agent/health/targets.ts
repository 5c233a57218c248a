/**
 * Which workloads the health monitor probes, from a pass's assessments: the running run of every
 * active component that has a `health` table, with where a VM's guest port is reached (its SLIRP
 * forward on 127.0.0.1, leased as `tcp/<guest port>`, or its bridge address). Pure.
 */
import { keyString, type ComponentKey } from '../../errors.js';
import type { DesiredState, Lease } from '../../registry/index.js';
import type { Assessment } from '../plan-types.js';
import type { ProbeTarget } from './probe.js';

export interface HealthTarget extends ProbeTarget {
  key: ComponentKey;
  /** ms since the epoch when this run started (the start period counts from it); now when unknown. */
  startedAt: number | undefined;
}

export function healthTargets(p: { assessments: Assessment[]; desired: DesiredState }, leases: Lease[]): HealthTarget[] {
  const specs = new Map(p.desired.components.flatMap((c) => (c.valid && c.spec.health ? [[keyString({ service: c.service, component: c.component }), c.spec] as const] : [])));
  const out: HealthTarget[] = [];
  for (const a of p.assessments) {
    const spec = specs.get(keyString(a.key));
    if (!spec?.health || a.desired !== 'running' || a.observed !== 'running' || !a.handle || a.runtime !== spec.runtime) continue;
    const check = spec.health;
    let endpoint: ProbeTarget['endpoint'];
    if (spec.runtime === 'unikernel' && check.port !== undefined) {
      if (a.network === 'bridge' && a.address) endpoint = { host: a.address, port: check.port, slirp: false };
      else {
        const lease = leases.find((l) => l.kind === 'host_port' && l.service === a.key.service && l.component === a.key.component && l.purpose === `tcp/${check.port}`);
        if (lease) endpoint = { host: '127.0.0.1', port: Number(lease.value), slirp: true };
      }
    }
    const started = a.startedAt ? Date.parse(a.startedAt) : NaN;
    out.push({ key: a.key, workload: a.workload, runtime: spec.runtime, handle: a.handle, check, endpoint, startedAt: Number.isFinite(started) ? started : undefined });
  }
  return out;
}
