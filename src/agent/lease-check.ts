/**
 * Which bridge VMs must hold the lease of their address right now, whatever happened to the
 * registry row: only those that run for sure, with no action under way. Pure. A VM whose start
 * just failed is seen `exited` (QEMU killed, its state dir not yet removed) or `starting` (its
 * record written, no pidfile) by a pass that overlaps the failure: no QEMU runs for it, and the
 * action under way is what gives its lease back; re-taking it then would log a false "running VM".
 */
import { keyString } from '../errors.js';
import type { Assessment } from './planner.js';

export function mustHoldLease(a: Assessment, busy: ReadonlySet<string>): a is Assessment & { address: string } {
  if (a.network !== 'bridge' || !a.address) return false;
  if (busy.has(keyString(a.key))) return false;
  // `running`: QEMU live and ready; `starting` counts only with a live QEMU (a `pid:` handle).
  return a.observed === 'running' || (a.observed === 'starting' && a.handle?.startsWith('pid:') === true);
}
