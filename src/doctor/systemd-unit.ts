/**
 * The doctor's judgement of the agent's systemd unit (issue 13, item 4): is systemd PID 1, is
 * mcp-agent.service installed, and does it keep the settings the agent's lifecycle depends on
 * (contrib/systemd/mcp-agent.service). Pure: it is given `systemctl show`'s output.
 */
import type { CheckResult } from './report.js';

export const UNIT = 'mcp-agent.service';

/** The properties the check asks `systemctl show -p` for. */
export const UNIT_PROPS = ['LoadState', 'ActiveState', 'SubState', 'MainPID', 'FragmentPath', 'KillMode', 'Restart', 'RestartPreventExitStatus', 'ExecMainStatus'] as const;

/** The settings the agent depends on, and what goes wrong without each. */
const EXPECTED: Array<{ prop: string; want: string; has: (v: string) => boolean; why: string }> = [
  { prop: 'KillMode', want: 'process', has: (v) => v === 'process', why: 'otherwise `systemctl stop` and every restart kill the VMs and conmon processes started from the unit' },
  { prop: 'Restart', want: 'always', has: (v) => v === 'always', why: 'otherwise an agent that dies stays dead' },
  {
    prop: 'RestartPreventExitStatus',
    want: '5',
    // `systemctl show` lists statuses and signals separated by spaces, e.g. "5" or "5 SIGTERM".
    has: (v) => v.split(/\s+/).includes('5'),
    why: 'otherwise a second agent on the same registry (exit 5) is retried for ever',
  },
];

/** `systemctl show -p A -p B` output (`A=x` lines) -> { A: 'x' }. */
export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return out;
}

export type SystemdSeen =
  /** PID 1 is not systemd (no /run/systemd/system): containers, CI, these test machines. */
  | { booted: false; pid1: string }
  | { booted: true; shown: Record<string, string> }
  | { booted: true; error: string };

const INSTALL = 'install -m 0644 /opt/mcp-agent/contrib/systemd/mcp-agent.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now mcp-agent (README, "Running as a service")';

/** ok / warn, never fail: a host without the unit can still run the agent by other means. */
export function judgeSystemd(seen: SystemdSeen): CheckResult {
  const name = 'systemd';
  if (!seen.booted) return { name, status: 'ok', detail: `not booted with systemd (PID 1 is ${seen.pid1 || 'unknown'}): nothing to check; the agent runs however it was started`, facts: { systemd: false } };
  if ('error' in seen) return { name, status: 'warn', detail: `systemd is PID 1 but systemctl show ${UNIT} did not answer: ${seen.error}`, fix: 'run systemctl status mcp-agent by hand', facts: { systemd: true } };
  const p = seen.shown;
  const facts: Record<string, string | number | boolean | null> = { systemd: true };
  for (const k of UNIT_PROPS) facts[k] = p[k] ?? null;
  if (p.LoadState !== 'loaded') {
    return { name, status: 'warn', detail: `systemd is PID 1 but ${UNIT} is ${p.LoadState || 'unknown'}: the agent does not run as a service`, fix: INSTALL, facts };
  }
  const wrong = EXPECTED.filter((e) => !e.has(p[e.prop] ?? ''));
  const where = p.FragmentPath ? ` (${p.FragmentPath})` : '';
  const running = p.ActiveState === 'active' ? `active, MainPID ${p.MainPID ?? '?'}` : p.ActiveState === 'failed' ? `failed (exit ${p.ExecMainStatus ?? '?'})` : p.ActiveState || 'unknown';
  if (wrong.length > 0) {
    const what = wrong.map((e) => `${e.prop}=${p[e.prop] || '(empty)'}, want ${e.want}: ${e.why}`).join('; ');
    return { name, status: 'warn', detail: `${UNIT}${where} is ${running}; ${what}`, fix: `set ${wrong.map((e) => `${e.prop}=${e.want}`).join(', ')} in the unit (or reinstall contrib/systemd/mcp-agent.service), then systemctl daemon-reload`, facts };
  }
  if (p.ActiveState === 'failed') {
    return { name, status: 'warn', detail: `${UNIT}${where} has the expected settings but ${running}`, fix: 'journalctl -u mcp-agent -n 50 says why; systemctl restart mcp-agent', facts };
  }
  return { name, status: 'ok', detail: `${UNIT}${where} is ${running}; KillMode=process, Restart=always, RestartPreventExitStatus=5`, facts };
}
