/**
 * What a VM of this agent is now, read from its state dir and /proc: running (SSH answered with
 * the pinned key), starting (launching or booting), or exited (with why, when it was recorded).
 * A VM whose record is fresh and has no pidfile yet is being launched, not dead.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { probeBanner } from '../ssh.js';
import type { Observed } from '../types.js';
import { stateFiles } from './args.js';
import { readExit } from './exit.js';
import { isReady, livePid, readPid, type VmRecord } from './state.js';

/** How long a VM record without a pidfile counts as launching (QEMU's -daemonize takes ~50 ms). */
export const LAUNCH_WINDOW_MS = 30_000;

/** `taps`: every TAP on the host and its bridge, when any VM is on a bridge (see HostTaps.tapAttachments). */
export async function observeVm(dir: string, rec: VmRecord, taps?: Map<string, string | undefined>): Promise<Observed> {
  const pid = livePid(dir, rec.name);
  let state: Observed['state'] = 'exited';
  // The record is written just before QEMU is launched (so a crash mid-launch is recoverable):
  // no pidfile yet and a fresh record means the launch is under way, not that the VM died. A
  // launch clears `ready` and the exit record first, so either of them means this launch got
  // further and QEMU has ended since (QEMU removes its pidfile as it exits): exited, at once. (A
  // running agent keeps this observation until something says otherwise: "starting" would stay.)
  const launching = pid === undefined && readPid(dir) === undefined && !isReady(dir) && !existsSync(stateFiles(dir).exit);
  if (launching && Date.now() - Date.parse(rec.launchedAt) < LAUNCH_WINDOW_MS) {
    state = 'starting';
  }
  if (pid !== undefined) {
    state = isReady(dir) ? 'running' : 'starting';
    // An agent that died mid-boot never marked the VM ready: a banner on the pinned port says
    // it came up (start() already verified the key of this very launch when it got that far).
    if (state === 'starting' && (await probeBanner(rec.sshHost, rec.sshPort, 500))) {
      writeFileSync(stateFiles(dir).ready, `${new Date().toISOString()}\n`);
      state = 'running';
    }
  }
  const exit = state === 'exited' ? readExit(dir) : undefined;
  const networkProblem = pid !== undefined && taps ? tapProblem(rec, taps) : undefined;
  return {
    runtime: 'unikernel',
    name: rec.name,
    id: pid !== undefined ? `pid:${pid}` : `exited:${rec.name}`,
    key: { service: rec.service, component: rec.component },
    specHash: rec.specHash,
    state,
    exitCode: exit?.exitCode,
    exitReason: state === 'exited' ? (exit?.why ?? 'QEMU ended with no shutdown recorded (killed, crashed, or ended while no agent watched it)') : undefined,
    startedAt: rec.launchedAt,
    address: rec.address,
    network: rec.netMode,
    networkProblem,
  };
}

/**
 * Why a running bridge VM cannot be reached although it runs: its TAP was deleted, or taken off
 * the bridge (deleting a bridge frees its ports; a bridge made again does not take them back). Pure.
 */
export function tapProblem(rec: Pick<VmRecord, 'netMode' | 'tap' | 'bridge'>, taps: Map<string, string | undefined>): string | undefined {
  if (rec.netMode !== 'bridge' || !rec.tap) return undefined;
  if (!taps.has(rec.tap)) return `its TAP ${rec.tap} is gone`;
  const master = taps.get(rec.tap);
  if (!master) return `its TAP ${rec.tap} is on no bridge${rec.bridge ? ` (was ${rec.bridge})` : ''}`;
  if (rec.bridge && master !== rec.bridge) return `its TAP ${rec.tap} is on ${master}, not ${rec.bridge}`;
  return undefined;
}
