/**
 * The bridge check: the host-only bridge and its isolation rules, as `agent net status` sees them
 * (HostNet.status: `ip` and `nft`, each bounded). A missing bridge is fine: VMs then use SLIRP.
 */
import { bridgeSettings } from '../../config/config.js';
import type { CheckResult } from '../report.js';
import { judgeBridge } from '../rules.js';
import type { DoctorContext } from './context.js';

export async function checkBridge(ctx: DoctorContext): Promise<CheckResult> {
  return judgeBridge(await ctx.hostNet.status(bridgeSettings(ctx.cfg)));
}
