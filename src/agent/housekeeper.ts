/**
 * Performs the housekeeping the planner decided (housekeeping.ts), for the executor: the registry
 * items first (failure counts, leases, records: no await between the plan and them, so they act on
 * what was planned), then the host's (isolation rules, garbage). Each one that changed something
 * lands in the events log; a failure that repeats pass after pass is written once, until it changes
 * or clears. A lease conflict is only reported (log), never changed. Never throws for one item.
 */
import type { Logger } from 'pino';
import { workloadName } from '../identity.js';
import type { RuntimeKind } from '../manifest/schema.js';
import type { BridgeSettings, HostNet } from '../net/types.js';
import { RegistryUnwritableError, type NewEvent, type Registry } from '../registry/index.js';
import type { Runtime } from '../runtime/types.js';
import type { Housekeeping } from './housekeeping.js';

export interface HousekeeperOptions {
  registry: Registry;
  runtimes: Map<RuntimeKind, Runtime>;
  host: HostNet;
  bridge: BridgeSettings;
  log: Logger;
}

/** Whether the isolation rules are in place after a pass tried to load them again (and why not). */
export type IsolationOutcome = { inPlace: true } | { inPlace: false; error: string };

export interface HousekeepingDone {
  isolation?: IsolationOutcome;
}

type Item<T extends Housekeeping['type']> = Extract<Housekeeping, { type: T }>;

export class Housekeeper {
  /** The last failure written per kind of item (isolate, collect-garbage): not written again while it repeats. */
  private readonly lastError = new Map<string, string>();

  constructor(private readonly o: HousekeeperOptions) {}

  async perform(items: Housekeeping[]): Promise<HousekeepingDone> {
    const done: HousekeepingDone = {};
    for (const item of items) {
      switch (item.type) {
        case 'reset-failures':
          this.o.registry.instances.clearFailures(item.workload);
          this.event(item, { ...item.key, workload: item.workload }, 'ok', 'failure count reset');
          break;
        case 'retake-lease':
          this.retake(item);
          break;
        case 'lease-conflict':
          this.o.log.error({ workload: item.workload, ip: item.address, leasedTo: item.leasedTo }, 'a running VM uses an address leased to another component');
          break;
        case 'release-lease': {
          const l = item.lease;
          this.o.registry.leases.release(l.kind, l.value);
          const key = { service: l.service, component: l.component };
          this.event(item, { ...key, workload: workloadName(key) }, 'ok', `released ${l.kind} ${l.value} (${l.purpose})`);
          break;
        }
        case 'forget-instance':
          this.o.registry.instances.forget(item.workload);
          this.event(item, { ...item.key, workload: item.workload }, 'ok', 'forgot its record');
          this.o.log.info({ workload: item.workload }, 'forgot the record of a workload that exists nowhere and that no component wants');
          break;
        case 'isolate':
          done.isolation = await this.isolate(item);
          break;
        case 'collect-garbage':
          await this.collectGarbage(item);
          break;
        case 'forget-drain-mark':
          this.o.registry.drain.unmark(item.workload);
          this.event(item, { ...item.key, workload: item.workload }, 'ok', 'no longer counted as stopped by a drain');
          break;
      }
    }
    return done;
  }

  private event(item: Housekeeping, about: { service?: string; component?: string; workload: string }, outcome: NewEvent['outcome'], message: string): void {
    const reason = 'reason' in item ? item.reason : '';
    this.o.registry.events.append({ service: about.service ?? null, component: about.component ?? null, workload: about.workload, action: item.type, reason, outcome, message });
  }

  /** True when this failure differs from the last one of its kind (so it is written); `undefined` clears it. */
  private changed(kind: string, error: string | undefined): boolean {
    const last = this.lastError.get(kind);
    if (error === undefined) this.lastError.delete(kind);
    else this.lastError.set(kind, error);
    return error !== undefined && error !== last;
  }

  /** Re-takes a running VM's address; on a disk that refuses writes, says so and lets the pass go on. */
  private retake(item: Item<'retake-lease'>): void {
    const { registry, log } = this.o;
    try {
      if (!registry.leases.take('ip', item.address, item.key, 'bridge')) return; // taken meanwhile: a conflict, next pass
    } catch (err) {
      if (!(err instanceof RegistryUnwritableError)) throw err;
      log.error({ workload: item.workload, ip: item.address, err: err.message }, 'cannot re-take the lease of a running VM now');
      return;
    }
    log.warn({ workload: item.workload, ip: item.address }, 're-took the lease of a running VM');
    this.event(item, { ...item.key, workload: item.workload }, 'ok', `re-took ip ${item.address}`);
  }

  /** An event when the rules were reloaded, or when loading them failed anew (not every pass). */
  private async isolate(item: Item<'isolate'>): Promise<IsolationOutcome> {
    const { host, bridge, log } = this.o;
    try {
      if (await host.ensureRules(bridge)) {
        this.event(item, { workload: item.bridge }, 'ok', `reloaded (tables inet ${bridge.table}, bridge ${bridge.table})`);
        log.warn({ bridge: item.bridge }, 'isolation rules were missing or changed: reloaded');
      }
      this.changed('isolate', undefined);
      return { inPlace: true };
    } catch (err) {
      const error = (err as Error).message;
      if (this.changed('isolate', error)) {
        this.event(item, { workload: item.bridge }, 'error', error);
        log.error({ bridge: item.bridge, err: error }, 'isolation rules are not in place and cannot be loaded: no VM is put on the bridge');
      }
      return { inPlace: false, error };
    }
  }

  private async collectGarbage(item: Item<'collect-garbage'>): Promise<void> {
    const rt = this.o.runtimes.get(item.runtime);
    if (!rt?.collectGarbage) return;
    try {
      const freed = await rt.collectGarbage();
      this.changed(`collect-garbage ${item.runtime}`, undefined);
      if (freed.length === 0) return;
      this.o.log.info({ freed }, 'freed resources no workload owns');
      this.event(item, { workload: item.runtime }, 'ok', `freed ${freed.join(', ')}`);
    } catch (err) {
      const error = (err as Error).message;
      this.o.log.warn({ err: error }, 'garbage collection failed');
      if (this.changed(`collect-garbage ${item.runtime}`, error)) this.event(item, { workload: item.runtime }, 'error', error);
    }
  }
}
