/**
 * The rules `agent doctor` judges by, on facts the checks gathered: pure, so each rule is tested
 * on its own (test/pure/doctor.test.ts) and the checks in checks/ only gather and call these.
 */
import type { AccelMode, HostVirt } from '../runtime/qemu/accel.js';
import type { NetStatus } from '../net/types.js';
import type { CheckResult } from './report.js';

/** The image of the throwaway container: the demo's and the tests' (a pure test keeps them equal). */
export const PROBE_IMAGE = 'localhost/agent-busybox:latest';

/** The demo's VM (examples/demo.toml, component `vm`): what a node with no VMs yet should have. */
export const DEMO_VM_FILES = { kernel: 'vmlinux', initrd: 'initrd.gz' } as const;

/** package.json `engines.node` (a pure test keeps the two equal). */
export const MIN_NODE = '20.10.0';

function versionParts(v: string): number[] {
  return v.replace(/^v/, '').split('.').map((p) => Number.parseInt(p, 10) || 0);
}

export function compareVersions(a: string, b: string): number {
  const [x, y] = [versionParts(a), versionParts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function judgeNode(version: string, min = MIN_NODE): CheckResult {
  if (compareVersions(version, min) >= 0) return { name: 'node', status: 'ok', detail: `Node ${version.replace(/^v/, '')} (needs >= ${min})` };
  return { name: 'node', status: 'fail', detail: `Node ${version.replace(/^v/, '')} is older than ${min}`, fix: `install Node ${min} or newer (Node 20 LTS)` };
}

/** Thresholds of free space under the VM directory (overlays, serial logs, QMP sockets). */
export const DISK_WARN_BYTES = 1024 ** 3;
/** Below this a VM's qcow2 overlay and its logs may not fit even once. */
export const DISK_FAIL_BYTES = 64 * 1024 ** 2;

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${Math.round(n / 1024)} KiB`;
}

/** `where`: the directory measured (the VM dir, or its nearest existing parent). */
export function judgeDisk(freeBytes: number, vmDir: string, where: string): CheckResult {
  const facts = { free_bytes: freeBytes, vm_dir: vmDir, measured_at: where };
  const detail = `${formatBytes(freeBytes)} free under ${vmDir}${where === vmDir ? '' : ` (measured at ${where}: it does not exist yet)`}`;
  if (freeBytes < DISK_FAIL_BYTES) return { name: 'disk', status: 'fail', detail, fix: `free space on that filesystem (VMs need at least ${formatBytes(DISK_FAIL_BYTES)}), or set qemu.vm_dir elsewhere`, facts };
  if (freeBytes < DISK_WARN_BYTES) return { name: 'disk', status: 'warn', detail: `${detail}: less than ${formatBytes(DISK_WARN_BYTES)}`, fix: 'free space on that filesystem, or set qemu.vm_dir elsewhere', facts };
  return { name: 'disk', status: 'ok', detail, facts };
}

/** The cost of running without KVM, measured on these machines (HOST-FACTS). */
export const TCG_COST = 'VMs run under TCG: boots take seconds (~3-6 s to SSH), CPU-heavy guests ~10x slower';

export function judgeAccel(mode: AccelMode, host: HostVirt): CheckResult {
  const kvmWorks = host.kvmOpens && host.cpuHasVirt;
  const why = !host.kvmOpens ? '/dev/kvm does not open read-write' : '/dev/kvm opens but the CPU shows no vmx/svm flag, a nested software virtualiser guests do not boot on';
  const facts = { mode, kvm_opens: host.kvmOpens, cpu_has_virt: host.cpuHasVirt, accel: mode === 'auto' ? (kvmWorks ? 'kvm' : 'tcg') : mode };
  if (mode === 'kvm') {
    if (kvmWorks) return { name: 'accelerator', status: 'ok', detail: 'KVM (qemu.accel = kvm)', facts };
    return { name: 'accelerator', status: 'fail', detail: `qemu.accel = kvm but KVM is not usable: ${why}`, fix: 'set qemu.accel = "auto" (TCG here), or run on a host with VT-x/AMD-V and /dev/kvm', facts };
  }
  if (mode === 'tcg') return { name: 'accelerator', status: 'ok', detail: `TCG (qemu.accel = tcg): ${TCG_COST}`, facts };
  if (kvmWorks) return { name: 'accelerator', status: 'ok', detail: 'KVM (/dev/kvm opens, the CPU has vmx/svm)', facts };
  return { name: 'accelerator', status: 'warn', detail: `${TCG_COST}; no KVM: ${why}`, fix: 'for KVM: a host with VT-x/AMD-V exposed and /dev/kvm usable; set qemu.accel = "tcg" to accept TCG', facts };
}

/** `ulimit -H` values of this process, by podman's resource name; null: unlimited. */
export type HardLimits = Map<string, number | null>;

/** podman's `--ulimit` names -> the line title in /proc/self/limits. */
export const LIMIT_TITLES: Record<string, string> = {
  nofile: 'Max open files',
  nproc: 'Max processes',
  core: 'Max core file size',
  memlock: 'Max locked memory',
  stack: 'Max stack size',
  fsize: 'Max file size',
  cpu: 'Max cpu time',
  as: 'Max address space',
  locks: 'Max file locks',
  sigpending: 'Max pending signals',
  msgqueue: 'Max msgqueue size',
  nice: 'Max nice priority',
  rtprio: 'Max realtime priority',
  data: 'Max data size',
  rss: 'Max resident set',
};

/** /proc/self/limits text -> hard limits by podman name. */
export function parseLimits(text: string): HardLimits {
  const out: HardLimits = new Map();
  for (const [name, title] of Object.entries(LIMIT_TITLES)) {
    const line = text.split('\n').find((l) => l.startsWith(title));
    if (!line) continue;
    const cols = line.slice(title.length).trim().split(/\s+/);
    const hard = cols[1];
    if (hard === undefined) continue;
    out.set(name, hard === 'unlimited' ? null : Number(hard));
  }
  return out;
}

/**
 * A container's ulimit above the hard limit podman runs under fails `podman run` unless the
 * process may raise it (CAP_SYS_RESOURCE): root lacks it on these machines (HOST-FACTS).
 */
export function judgeUlimits(configured: string[], hard: HardLimits, canRaise: boolean, containersConf: string | undefined): CheckResult {
  const facts = { can_raise: canRaise, configured: configured.join(' ') };
  if (configured.length === 0) {
    const nofile = hard.get('nofile');
    if (canRaise || containersConf || nofile === null) return { name: 'ulimits', status: 'ok', detail: `none set by the agent (podman's defaults${containersConf ? ` and ${containersConf}` : ''})`, facts };
    return { name: 'ulimits', status: 'warn', detail: `podman.ulimits is empty: podman's default nofile may exceed this host's hard limit (${nofile ?? '?'}) without CAP_SYS_RESOURCE`, fix: 'set podman.ulimits, e.g. ["nofile=20000:20000", "nproc=32768:32768"]', facts };
  }
  const over: string[] = [];
  const unknown: string[] = [];
  for (const u of configured) {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) continue; // the settings schema already refuses these
    const name = m[1]!;
    const wanted = Number(m[3] ?? m[2]);
    if (!hard.has(name)) {
      unknown.push(name);
      continue;
    }
    const limit = hard.get(name)!;
    if (limit !== null && (wanted === -1 || wanted > limit)) over.push(`${name} ${wanted === -1 ? 'unlimited' : wanted} > ${limit}`);
  }
  if (over.length > 0 && !canRaise) {
    return { name: 'ulimits', status: 'fail', detail: `podman.ulimits exceed this host's hard limits and the agent lacks CAP_SYS_RESOURCE: ${over.join(', ')}`, fix: 'lower podman.ulimits to at most the hard limits (ulimit -Hn, ulimit -Hu), or raise those limits for the agent', facts };
  }
  const raised = over.length > 0 ? ` (above the hard limits, allowed by CAP_SYS_RESOURCE: ${over.join(', ')})` : '';
  if (unknown.length > 0) return { name: 'ulimits', status: 'warn', detail: `${configured.join(' ')}; not known to check: ${unknown.join(', ')}${raised}`, fix: `check that podman accepts ${unknown.join(', ')}`, facts };
  return { name: 'ulimits', status: 'ok', detail: `${configured.join(' ')} within this host's hard limits${raised}`, facts };
}

/** The bridge is optional (VMs use SLIRP without it); present, it must be isolated and one agent's. */
export function judgeBridge(s: NetStatus): CheckResult {
  const b = s.bridge;
  const agents = Object.entries(s.agents);
  const facts = { bridge: b.name, present: b.present, rules_loaded: s.rules.loaded, agents: agents.length };
  if (!b.present) return { name: 'bridge', status: 'ok', detail: `${b.name} absent: VMs with network auto use SLIRP (agent net up creates the bridge)`, facts };
  const head = `${b.name} present, ${b.up ? 'up' : 'down'}, ${b.address ?? 'no address'}`;
  if (!s.rules.loaded) return { name: 'bridge', status: 'fail', detail: `${head}; isolation rules not in place: ${s.rules.detail}`, fix: 'agent net up (loads the isolation rules again)', facts };
  if (agents.length > 1) return { name: 'bridge', status: 'warn', detail: `${head}; shared by ${agents.length} agents (${agents.map(([id]) => id).join(', ')}): their addresses may collide`, fix: 'give each agent its own bridge and subnet (net.bridge, net.subnet)', facts };
  if (!b.up || !b.address) return { name: 'bridge', status: 'warn', detail: `${head}; isolation rules in place`, fix: 'agent net up (brings it up with its gateway address)', facts };
  return { name: 'bridge', status: 'ok', detail: `${head}; isolation rules in place`, facts };
}
