/**
 * Wakes the loop when the host's networking changes under the agent, instead of at the next
 * resync: `nft monitor` (a rule, chain or table of ours deleted or added: a firewall reload that
 * flushed the isolation rules) and `ip -o monitor link` (the bridge or a TAP appearing, vanishing
 * or changing master). What changed is then judged by the pass itself (level-triggered): these
 * streams only say "look now". They run only while a VM component could use the bridge (network
 * auto or bridge, see HostNetWatchSwitch), and end with the agent even on SIGKILL (boundToAgent).
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { boundToAgent, helperExited } from '../child-lifetime.js';
import type { DesiredState } from '../registry/desired.js';

export interface HostNetWatch {
  bridge: string;
  table: string;
  /** Set as MCP_AGENT_ID in the monitors' environment: whose they are, for anyone cleaning up. */
  agentId: string;
  onChange: (why: string) => void;
}

/** Whether a VM component could be put on the bridge (network auto or bridge). */
export function vmsMayUseBridge(desired: DesiredState): boolean {
  return desired.components.some((c) => c.valid && c.spec.runtime === 'unikernel' && c.spec.network !== 'slirp');
}

/** Lines of `nft monitor` and `ip -o monitor link` that concern the agent's table, bridge or TAPs. */
export function concernsAgent(line: string, bridge: string, table: string): boolean {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`\\b(inet|bridge) ${esc(table)}\\b`).test(line) || new RegExp(`(^|[\\s:])${esc(bridge)}[:\\s@]`).test(line) || /\btap-[0-9a-f]{11}\b/.test(line);
}

/** Runs a monitor command, restarting it when it ends early; the returned stop resolves once it exited (bounded). */
function watchStream(cmd: string, args: string[], env: Record<string, string>, onLine: (line: string) => void): () => Promise<void> {
  let stopped = false;
  let child: ResultPromise | undefined;
  let retry: NodeJS.Timeout | undefined;
  const spawnOnce = (): void => {
    if (stopped) return;
    const started = Date.now();
    const [file, argv] = boundToAgent(cmd, args);
    child = execa(file, argv, { env, stdin: 'ignore', stderr: 'ignore', buffer: false, reject: false });
    createInterface({ input: child.stdout! }).on('line', onLine);
    void child.then(() => {
      if (stopped) return;
      // Ended early (tool missing or failing): retry later instead of spinning.
      retry = setTimeout(spawnOnce, Date.now() - started < 1000 ? 5000 : 0);
      retry.unref();
    });
  };
  spawnOnce();
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    if (!child) return;
    child.kill('SIGTERM');
    await helperExited(child);
  };
}

export function watchHostNet(o: HostNetWatch): () => Promise<void> {
  const onLine = (source: string) => (line: string) => {
    if (concernsAgent(line, o.bridge, o.table)) o.onChange(`${source}: ${line.slice(0, 100)}`);
  };
  const env = { MCP_AGENT_ID: o.agentId };
  const stops = [watchStream('nft', ['monitor'], env, onLine('nft')), watchStream('ip', ['-o', 'monitor', 'link'], env, onLine('ip'))];
  return async () => void (await Promise.all(stops.map((s) => s())));
}

/** The host-net monitors, on only while desired state has a VM that could use the bridge. */
export class HostNetWatchSwitch {
  private stop: (() => Promise<void>) | undefined;

  constructor(private readonly o: HostNetWatch) {}

  /** Starts or stops the monitors to match `desired` (undefined: stop them). */
  follow(desired: DesiredState | undefined): void {
    const wanted = desired !== undefined && vmsMayUseBridge(desired);
    if (wanted && !this.stop) this.stop = watchHostNet(this.o);
    else if (!wanted && this.stop) void this.close();
  }

  /** Stops the monitors; resolves once they exited (bounded). */
  async close(): Promise<void> {
    const stop = this.stop;
    this.stop = undefined;
    await stop?.();
  }
}
