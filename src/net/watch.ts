/**
 * Wakes the loop when the host's networking changes under the agent, instead of at the next
 * resync: `nft monitor` (a rule, chain or table of ours deleted or added: a firewall reload that
 * flushed the isolation rules) and `ip -o monitor link` (the bridge or a TAP appearing, vanishing
 * or changing master). What changed is then judged by the pass itself (level-triggered): these
 * streams only say "look now". Each runs under `timeout` for a window and is restarted, so if the
 * agent is killed with SIGKILL its orphaned monitors end by themselves within that window.
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';

export interface HostNetWatch {
  bridge: string;
  table: string;
  /** Set as MCP_AGENT_ID in the monitors' environment: whose they are, for anyone cleaning up. */
  agentId: string;
  onChange: (why: string) => void;
  windowSeconds?: number;
}

/** Lines of `nft monitor` and `ip -o monitor link` that concern the agent's table, bridge or TAPs. */
export function concernsAgent(line: string, bridge: string, table: string): boolean {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`\\b(inet|bridge) ${esc(table)}\\b`).test(line) || new RegExp(`(^|[\\s:])${esc(bridge)}[:\\s@]`).test(line) || /\btap-[0-9a-f]{11}\b/.test(line);
}

function watchStream(cmd: string, args: string[], windowSeconds: number, env: Record<string, string>, onLine: (line: string) => void): () => void {
  let stopped = false;
  let child: ResultPromise | undefined;
  let retry: NodeJS.Timeout | undefined;
  const spawnOnce = (): void => {
    if (stopped) return;
    const started = Date.now();
    child = execa('timeout', [String(windowSeconds), cmd, ...args], { env, stdin: 'ignore', stderr: 'ignore', buffer: false, reject: false });
    createInterface({ input: child.stdout! }).on('line', onLine);
    void child.then(() => {
      if (stopped) return;
      // Ended early (tool missing or failing): retry later instead of spinning.
      retry = setTimeout(spawnOnce, Date.now() - started < 1000 ? 5000 : 0);
      retry.unref();
    });
  };
  spawnOnce();
  return () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    child?.kill('SIGTERM');
  };
}

export function watchHostNet(o: HostNetWatch): () => void {
  const windowSeconds = o.windowSeconds ?? 60;
  const onLine = (source: string) => (line: string) => {
    if (concernsAgent(line, o.bridge, o.table)) o.onChange(`${source}: ${line.slice(0, 100)}`);
  };
  const env = { MCP_AGENT_ID: o.agentId };
  const stops = [watchStream('nft', ['monitor'], windowSeconds, env, onLine('nft')), watchStream('ip', ['-o', 'monitor', 'link'], windowSeconds, env, onLine('ip'))];
  return () => stops.forEach((s) => s());
}
