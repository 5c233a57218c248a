/**
 * Doctor checks that read the host itself (no external command): the Node version, the hard
 * ulimits podman will run under, the accelerator QEMU will get, the free disk under the VM dir.
 * Each gathers facts and hands them to the pure rules in ../rules.ts.
 */
import { readFileSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { probeHostVirt } from '../../runtime/qemu/accel.js';
import type { CheckResult } from '../report.js';
import { judgeAccel, judgeDisk, judgeNode, judgeUlimits, parseLimits } from '../rules.js';
import type { DoctorContext } from './context.js';

export function checkNode(): Promise<CheckResult> {
  return Promise.resolve(judgeNode(process.versions.node));
}

/** CAP_SYS_RESOURCE is capability 24: it lets a process raise a hard limit. */
const CAP_SYS_RESOURCE = 24n;

function canRaiseLimits(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE) & 1n) === 1n : false;
}

export function checkUlimits(ctx: DoctorContext): Promise<CheckResult> {
  // podman is started by the agent: it inherits the agent's limits, which this process shares.
  const hard = parseLimits(readFileSync('/proc/self/limits', 'utf8'));
  return Promise.resolve(judgeUlimits(ctx.cfg.podman.ulimits, hard, canRaiseLimits(), ctx.cfg.podman.containers_conf));
}

export function checkAccel(ctx: DoctorContext): Promise<CheckResult> {
  return Promise.resolve(judgeAccel(ctx.cfg.qemu.accel, probeHostVirt()));
}

/** The VM dir, or its nearest existing parent (the agent makes it on the first VM start). */
function existingDir(dir: string): string {
  let d = dir;
  while (!statSync(d, { throwIfNoEntry: false })?.isDirectory()) {
    const up = dirname(d);
    if (up === d) return d;
    d = up;
  }
  return d;
}

export function checkDisk(ctx: DoctorContext): Promise<CheckResult> {
  const vmDir = ctx.paths.vmDir;
  const where = existingDir(vmDir);
  const fs = statfsSync(where);
  // root may use the reserved blocks too: count them for root, as registryWritability does.
  const blocks = process.getuid?.() === 0 ? fs.bfree : fs.bavail;
  return Promise.resolve(judgeDisk(Number(blocks) * Number(fs.bsize), vmDir, where));
}
