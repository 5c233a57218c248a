/**
 * A VM's systemd scope on the host (the I/O half of scope.ts): what the host is, QEMU's launch
 * through `systemd-run --scope`, and ending a scope once its QEMU is gone. The invariant: a scope
 * of ours holds one live QEMU or is ended by the agent (a stop, a removal, a rolled-back start),
 * so `systemctl list-units 'mcp-vm-*' --all` shows the VMs that run and nothing else.
 *
 * Ending it by hand matters where systemd is not told a cgroup emptied: under cgroup v1 without
 * a working release agent (a container's systemd, test/e2e/systemd-scopes.test.ts) an empty scope
 * stays "active" forever. On a host with cgroup v2 the scope ends by itself when QEMU exits; the
 * `systemctl stop` then finds nothing to do.
 */
import { existsSync } from 'node:fs';
import { findExecutable, runBounded, type CommandBound } from '../command.js';
import { isUnitTaken, scopeArgs, scopeUnit, type HostSystemd, type ScopeLaunch } from './scope.js';

const SYSTEMD_RUN = 'systemd-run';
const SYSTEMCTL = 'systemctl';
/** `systemctl stop` of a scope whose QEMU is already gone returns in milliseconds. */
const SYSTEMCTL_TIMEOUT_MS = 30_000;

/** sd_booted() (a stat), then systemd-run on PATH, then root: what `qemu.systemd_scope = auto` asks. */
export function hostSystemd(): HostSystemd {
  const booted = existsSync('/run/systemd/system');
  return { booted, systemdRun: booted && findExecutable(SYSTEMD_RUN) !== undefined, root: process.geteuid?.() === 0 };
}

/**
 * Runs QEMU's launch (`binary args`, which daemonizes and returns), in its scope when `scope` is
 * set. Rejects as runBounded does (CommandFailedError: stderr, shortMessage) when the launch fails.
 * A unit of the same name left from an earlier run (a crash, a scope systemd never saw empty) is
 * ended and the launch tried once more: the caller has already made sure no live VM of this
 * workload is in it, so what is left there is a leftover.
 */
export async function launchQemu(binary: string, args: readonly string[], scope: ScopeLaunch | undefined, bound: CommandBound): Promise<void> {
  if (!scope) {
    await runBounded(binary, args, bound);
    return;
  }
  const argv = scopeArgs(scope, binary, args);
  const first = await runBounded(SYSTEMD_RUN, argv, bound, { reject: false });
  if (!first.failed) return;
  if (!isUnitTaken(String(first.stderr))) throw first;
  await clearStale(scopeUnit(scope.workload), bound.workload);
  await runBounded(SYSTEMD_RUN, argv, bound);
}

/** Stops a leftover unit (killing what is still in it) and forgets a failed one. */
async function clearStale(unit: string, workload: string | undefined): Promise<void> {
  await systemctl(['stop', unit], 'launch', workload);
  await systemctl(['reset-failed', unit], 'launch', workload);
}

/**
 * Ends a VM's scope after its QEMU is gone (a stop, a removal, a failed start). Already gone
 * ("not loaded") is not an error; nothing else is either: a scope that cannot be stopped now is
 * cleared at the VM's next launch.
 */
export async function endScope(unit: string | undefined, workload: string): Promise<void> {
  if (unit) await systemctl(['stop', unit], 'stop', workload);
}

async function systemctl(args: string[], operation: string, workload: string | undefined): Promise<void> {
  await runBounded(SYSTEMCTL, args, { runtime: 'qemu', operation, workload, timeoutMs: SYSTEMCTL_TIMEOUT_MS }, { reject: false }).catch(() => undefined);
}
