/**
 * Runs every doctor check side by side, each under its own time bound: a check that throws or
 * does not answer in time becomes that check's `fail`, never a crash of the others. The checks
 * bound their own commands tighter (TOOL_TIMEOUT_MS, the podman timeouts), so the outer bound
 * is a net, not the usual way out: a container being removed is never left half-way.
 */
import type { CheckResult } from './report.js';
import { crashedCheck } from './report.js';
import { checkBridge } from './checks/bridge.js';
import type { DoctorContext } from './checks/context.js';
import { checkAccel, checkDisk, checkNode, checkUlimits } from './checks/host.js';
import { checkPodman } from './checks/podman.js';
import { checkImages, checkRegistry } from './checks/registry.js';
import { checkSystemd } from './checks/systemd.js';
import { checkNetTools, checkQemu } from './checks/tools.js';

export interface Check {
  name: string;
  run: (ctx: DoctorContext) => Promise<CheckResult>;
  /** The most this check may take (ms); a function of the settings for the podman check. */
  timeoutMs: (ctx: DoctorContext) => number;
}

const quick = (): number => 20_000;

export const CHECKS: Check[] = [
  { name: 'node', run: checkNode, timeoutMs: quick },
  { name: 'registry', run: checkRegistry, timeoutMs: quick },
  // version + image exists (list bound each) + run, inspect and rm (change bound each).
  { name: 'podman', run: checkPodman, timeoutMs: (ctx) => 2 * ctx.cfg.podman.list_timeout_seconds * 1000 + 3 * ctx.cfg.podman.timeout_seconds * 1000 + 5000 },
  { name: 'ulimits', run: checkUlimits, timeoutMs: quick },
  { name: 'qemu', run: checkQemu, timeoutMs: quick },
  { name: 'accelerator', run: checkAccel, timeoutMs: quick },
  { name: 'net-tools', run: checkNetTools, timeoutMs: quick },
  { name: 'bridge', run: checkBridge, timeoutMs: quick },
  { name: 'images', run: checkImages, timeoutMs: quick },
  { name: 'disk', run: checkDisk, timeoutMs: quick },
  { name: 'systemd', run: checkSystemd, timeoutMs: quick },
];

/** One check under its bound; whatever it throws becomes its fail. */
async function bounded(check: Check, ctx: DoctorContext): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const limit = check.timeoutMs(ctx);
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(limit / 1000)} s`)), limit);
  });
  try {
    const r = await Promise.race([Promise.resolve().then(() => check.run(ctx)), late]);
    return { ...r, name: check.name };
  } catch (err) {
    return crashedCheck(check.name, err);
  } finally {
    clearTimeout(timer);
  }
}

export function runChecks(ctx: DoctorContext, checks: Check[] = CHECKS): Promise<CheckResult[]> {
  return Promise.all(checks.map((c) => bounded(c, ctx)));
}
