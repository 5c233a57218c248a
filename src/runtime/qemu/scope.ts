/**
 * A VM in its own systemd scope, as data (issue 13, item 3): whether VMs get scopes on this host
 * (the `qemu.systemd_scope` setting and what the host is), the scope's unit name, and the
 * `systemd-run --scope` command line that wraps QEMU's. Pure: the host facts come in as values.
 *
 * Why a scope: QEMU daemonizes, so without one it stays in the cgroup of whoever launched it
 * (the agent's service) and systemd reports it as a "remaining process" of that service. In a
 * scope under machine.slice each VM is a unit of its own (`systemctl status mcp-vm-<workload>`),
 * with the memory and CPU bounds of its spec. The scope outlives the agent like QEMU does.
 */

export const SCOPE_SETTINGS = ['auto', 'on', 'off'] as const;
export type ScopeSetting = (typeof SCOPE_SETTINGS)[number];

/** The slice VM scopes go in: where libvirt and systemd-machined put VMs too. */
export const SCOPE_SLICE = 'machine.slice';

/** What the host is, as far as scopes go. */
export interface HostSystemd {
  /** sd_booted()'s rule: /run/systemd/system exists, so systemd is PID 1 and manages this host. */
  booted: boolean;
  /** `systemd-run` is on PATH. */
  systemdRun: boolean;
  /** Running as root: only root may create units in the system manager's machine.slice. */
  root: boolean;
}

/** Scopes on, with what their bounds need; or off, with why "on" could not be honoured. */
export type ScopeMode = { on: true; overheadMib: number } | { on: false; problem?: string };

export const SCOPE_ON_RULE = 'is "on", but systemd is not running this host (no /run/systemd/system, sd_booted()\'s rule): set it to "auto" or "off"';

/**
 * auto: scopes when systemd is PID 1, systemd-run is there and the agent is root; otherwise VMs
 * start as before (plain `-daemonize`). on: scopes, and a host without systemd is a problem the
 * caller reports (`agent run` refuses to start). off: never.
 */
export function scopeMode(setting: ScopeSetting, host: () => HostSystemd, overheadMib: number): ScopeMode {
  if (setting === 'off') return { on: false };
  const h = host();
  if (setting === 'auto') return h.booted && h.systemdRun && h.root ? { on: true, overheadMib } : { on: false };
  if (!h.booted) return { on: false, problem: SCOPE_ON_RULE };
  if (!h.systemdRun) return { on: false, problem: 'is "on", but systemd-run is not on PATH (it comes with systemd)' };
  return { on: true, overheadMib };
}

/**
 * `mcp-vm-<workload>.scope`. Workload names are `service-component` of [a-z0-9-], all valid in a
 * unit name; anything else is escaped as systemd-escape does (`\xNN`), so a name is never refused.
 */
export function scopeUnit(workload: string): string {
  const escaped = [...Buffer.from(workload, 'utf8')].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9:_.-]/.test(c) ? c : `\\x${b.toString(16).padStart(2, '0')}`;
  });
  return `mcp-vm-${escaped.join('')}.scope`;
}

export interface ScopeLaunch {
  workload: string;
  service: string;
  component: string;
  /** The guest's memory (`-m`). */
  memoryMib: number;
  vcpus: number;
  /** Host memory QEMU holds besides its guest's (qemu.overhead_mib, the figure admission counts). */
  overheadMib: number;
}

/**
 * `systemd-run` arguments that start `binary args` in the VM's scope. systemd-run creates the
 * scope, waits for it to be active, then execs QEMU in it; QEMU's daemonized child stays in the
 * scope's cgroup when its first process exits. `--collect` unloads the scope when it ends, failed
 * or not, so a stopped VM leaves no unit behind.
 */
export function scopeArgs(s: ScopeLaunch, binary: string, args: readonly string[]): string[] {
  return [
    '--scope',
    '--quiet',
    '--collect',
    '--unit', scopeUnit(s.workload),
    '--slice', SCOPE_SLICE,
    '--description', `mcp-agent VM ${s.service}/${s.component} (workload ${s.workload})`,
    // The same share admission counts (src/agent/admission.ts shareOf): guest memory plus QEMU's
    // overhead; one CPU's worth of time per vCPU.
    '-p', `MemoryMax=${s.memoryMib + s.overheadMib}M`,
    '-p', `CPUQuota=${s.vcpus * 100}%`,
    '--',
    binary,
    ...args,
  ];
}

/** systemd-run's refusal when a unit of that name is still loaded (a scope an earlier run left). */
export function isUnitTaken(stderr: string): boolean {
  return /already loaded|already exists|has a fragment file/i.test(stderr);
}
