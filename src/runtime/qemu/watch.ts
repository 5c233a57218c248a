/**
 * QMP watching: one long-lived QMP connection per live VM of this agent. A guest that powers
 * itself off (SHUTDOWN, recorded in its state dir) or a QEMU killed behind the agent's back (the
 * socket closes with no event) is reported at once. QMP serves one client at a time, so whoever
 * else needs QMP for a VM (stop) borrows the watcher's connection rather than open a second one.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../qmp/client.js';
import type { RuntimeEvent } from '../types.js';
import { stateFiles } from './args.js';
import { recordExit } from './exit.js';
import { livePid, readRecord } from './state.js';

/** Events of a guest the agent reacts to; others (POWERDOWN, ...) are followed by one of these. */
const REPORTED = ['SHUTDOWN', 'RESET', 'STOP', 'RESUME', 'GUEST_PANICKED'];

export class QmpWatch {
  /** One QMP connection per live VM, held while watching. */
  private readonly held = new Map<string, QmpClient>();
  private rescanSoon: (() => void) | undefined;

  constructor(private readonly vmDir: string, private readonly agentId: string) {}

  /** A VM was just launched: look for it shortly (its QMP socket is up once -daemonize returns). */
  rescan(): void {
    this.rescanSoon?.();
  }

  /** A QMP connection to the VM: the watcher's if it holds one, else a fresh one (closed after). */
  async withQmp<T>(name: string, fn: (c: QmpClient) => Promise<T>): Promise<T> {
    const held = this.held.get(name);
    if (held?.isOpen) return fn(held);
    const c = await QmpClient.connect(stateFiles(join(this.vmDir, name)).qmp, { timeoutMs: 2000 });
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }

  /** Lets go of a VM's connection (it is being removed). */
  drop(name: string): void {
    this.held.get(name)?.close();
    this.held.delete(name);
  }

  /** Scans every 2 s (and soon after a launch) for live VMs not yet watched; until the returned function is called. */
  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    let stopped = false;
    const scan = (): void => {
      if (stopped || !existsSync(this.vmDir)) return;
      for (const name of readdirSync(this.vmDir)) {
        const dir = join(this.vmDir, name);
        if (this.held.get(name)?.isOpen) continue;
        const rec = readRecord(dir);
        if (!rec || rec.agentId !== this.agentId || livePid(dir, name) === undefined) continue;
        this.held.delete(name);
        void QmpClient.connect(stateFiles(dir).qmp, { timeoutMs: 2000 }).then(
          (c) => {
            if (stopped) return void c.close();
            this.held.set(name, c);
            c.onEvent((e) => {
              if (e.event === 'SHUTDOWN') recordExit(dir, e);
              if (REPORTED.includes(e.event)) onEvent({ runtime: 'unikernel', workload: name, status: e.event.toLowerCase(), exitCode: undefined, at: Date.now() });
            });
            c.onClose((info) => {
              if (this.held.get(name) === c) this.held.delete(name);
              if (!info.expected && !stopped) onEvent({ runtime: 'unikernel', workload: name, status: 'died', exitCode: undefined, at: Date.now() });
            });
          },
          () => undefined, // not reachable now (booting, or held elsewhere): the next scan retries
        );
      }
    };
    this.rescanSoon = () => setTimeout(scan, 100).unref();
    scan();
    const timer = setInterval(scan, 2000);
    return () => {
      stopped = true;
      this.rescanSoon = undefined;
      clearInterval(timer);
      for (const c of this.held.values()) void c.close();
      this.held.clear();
    };
  }
}
