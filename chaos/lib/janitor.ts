/**
 * Everything a chaos run starts is registered here and removed by `cleanup()`, in `finally` and on
 * SIGINT/SIGTERM: nodes (their agents, containers, QEMU, monitors, directories), tmpfs mounts, and
 * child processes (sqlite3 writers, CLI calls). As a last resort it ends the processes that carry
 * this run's marker (CHAOS_RUN=<token>) in their environment, by pid: a hung runtime stand-in
 * or a QEMU an agent launched just before it was killed. It never ends anything by name.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { ChildTracker, cleanUpOnSignals } from '../../bench/lib/children.js';
import { ROOT, TestNode } from '../../test/helpers/agent.js';

export class Janitor {
  /** Set in the environment of every process of this run; how leftovers are found. */
  readonly marker = `chaos-${randomBytes(6).toString('hex')}`;
  readonly children: ChildTracker;
  private readonly nodes: TestNode[] = [];
  private readonly mounts: string[] = [];
  private readonly dirs: string[] = [];

  constructor() {
    this.children = new ChildTracker({ cwd: ROOT, env: { ...process.env, CHAOS_RUN: this.marker } });
  }

  /** A scratch node whose every command carries the marker. */
  node(env: Record<string, string> = {}): TestNode {
    const n = new TestNode({ CHAOS_RUN: this.marker, AGENT_ACCEL: 'tcg', ...env });
    this.nodes.push(n);
    return n;
  }

  /** Registers a node built elsewhere (e.g. a subclass) for cleanup. */
  adopt<T extends TestNode>(n: T): T {
    this.nodes.push(n);
    return n;
  }

  mounted(path: string): void {
    this.mounts.push(path);
  }

  unmounted(path: string): void {
    const i = this.mounts.indexOf(path);
    if (i >= 0) this.mounts.splice(i, 1);
  }

  dir(path: string): void {
    this.dirs.push(path);
  }

  /** pids of live processes whose environment carries this run's marker. */
  markedProcesses(): number[] {
    const pids: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`CHAOS_RUN=${this.marker}`)) pids.push(Number(p));
      } catch {
        /* gone, or not ours to read */
      }
    }
    return pids;
  }

  async cleanup(): Promise<void> {
    await this.children.endAll(3000);
    // Nodes first, while their registries are still readable (the agent id finds containers).
    const nodes = this.nodes.splice(0);
    for (const n of nodes) {
      try {
        await n.cleanup();
      } catch {
        /* a node dir that holds a mount point cannot be removed until it is unmounted: below */
      }
    }
    for (const pid of this.markedProcesses()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const m of this.mounts.splice(0).reverse()) {
      await execa('umount', ['-l', m], { reject: false });
      rmSync(m, { recursive: true, force: true });
    }
    for (const d of [...this.dirs.splice(0), ...nodes.map((n) => n.dir)]) rmSync(d, { recursive: true, force: true });
  }

  /** For a standalone run: clean up on SIGINT/SIGTERM, then exit 130. */
  onSignals(log: (msg: string) => void): { readonly interrupted: boolean } {
    return cleanUpOnSignals(log, () => this.cleanup());
  }
}
