/**
 * Doctor checks of the host tools the agent runs: qemu-system and qemu-img (the configured
 * binaries), nft and ip (the bridge and its isolation rules). Each answers `--version` within
 * TOOL_TIMEOUT_MS or counts as missing. A missing tool fails only where something needs it.
 */
import type { CheckResult } from '../report.js';
import { toolVersion, type DoctorContext } from './context.js';

/** The unikernel components the registry asks for (0 when there is no readable registry). */
async function vmsWanted(ctx: DoctorContext): Promise<number> {
  const d = await ctx.desired();
  if (d.state !== 'read') return 0;
  return d.desired.components.filter((c) => c.valid && c.spec.runtime === 'unikernel').length;
}

/** `QEMU emulator version 7.2.22 (Debian ...)` -> `7.2.22`; the whole line when it has no version. */
function shortVersion(line: string): string {
  return /\bversion\s+v?(\d[\w.+~-]*)/i.exec(line)?.[1] ?? /\bv?(\d+\.\d+[\w.+~-]*)/.exec(line)?.[1] ?? line;
}

export async function checkQemu(ctx: DoctorContext): Promise<CheckResult> {
  const { binary, img_binary: img } = ctx.cfg.qemu;
  const [sys, tool, vms] = await Promise.all([toolVersion(binary), toolVersion(img), vmsWanted(ctx)]);
  const facts = { binary, img_binary: img, vms_wanted: vms };
  if (sys.ok && tool.ok) return { name: 'qemu', status: 'ok', detail: `${binary} ${shortVersion(sys.version)}, ${img} ${shortVersion(tool.version)}`, facts };
  const why = [sys, tool].flatMap((a) => (a.ok ? [] : [a.why])).join('; ');
  const fix = 'apt-get install qemu-system-x86 qemu-utils (scripts/setup), or set qemu.binary / qemu.img_binary';
  if (vms > 0) return { name: 'qemu', status: 'fail', detail: `${why}: the registry asks for ${vms} VM${vms === 1 ? '' : 's'}`, fix, facts };
  return { name: 'qemu', status: 'warn', detail: `${why}: VMs cannot run here (the registry asks for none)`, fix, facts };
}

export async function checkNetTools(): Promise<CheckResult> {
  const [nft, ip] = await Promise.all([toolVersion('nft', ['--version']), toolVersion('ip', ['-V'])]);
  if (nft.ok && ip.ok) return { name: 'net-tools', status: 'ok', detail: `nft ${shortVersion(nft.version)}, ip ${shortVersion(ip.version)}` };
  const why = [nft, ip].flatMap((a) => (a.ok ? [] : [a.why])).join('; ');
  return {
    name: 'net-tools',
    status: 'warn',
    detail: `${why}: the bridge and its isolation rules cannot be managed (VMs on SLIRP need neither)`,
    fix: 'apt-get install nftables iproute2 (scripts/setup)',
  };
}
