/**
 * Doctor check: does this host run the agent as a systemd service with the unit's expected
 * settings? Reads whether systemd is PID 1 (the sd_booted test: /run/systemd/system exists) and
 * `systemctl show mcp-agent.service`; src/doctor/systemd-unit.ts judges what it finds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { failureLine, runBounded } from '../../runtime/command.js';
import type { CheckResult } from '../report.js';
import { judgeSystemd, parseShow, UNIT, UNIT_PROPS, type SystemdSeen } from '../systemd-unit.js';
import { TOOL_TIMEOUT_MS } from './context.js';

function pid1(): string {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return '';
  }
}

async function see(): Promise<SystemdSeen> {
  if (!existsSync('/run/systemd/system')) return { booted: false, pid1: pid1() };
  const args = ['show', UNIT, ...UNIT_PROPS.flatMap((p) => ['-p', p])];
  try {
    const r = await runBounded('systemctl', args, { runtime: 'doctor', operation: 'systemctl show', timeoutMs: TOOL_TIMEOUT_MS, read: true }, { reject: false });
    if (r.failed) return { booted: true, error: failureLine(r) };
    return { booted: true, shown: parseShow(r.stdout) };
  } catch (err) {
    return { booted: true, error: (err as Error).message };
  }
}

export async function checkSystemd(): Promise<CheckResult> {
  return judgeSystemd(await see());
}
