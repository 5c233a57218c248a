// A node with a real systemd as PID 1, for the service tests (issue 13): the cached Debian rootfs
// (scripts/systemd-rootfs) booted by podman with --systemd=always, the checkout and the host's node
// bind-mounted in, commands run with `podman exec`. The container is always removed at cleanup.
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { ROOT, IMAGE, type CliResult } from './agent.js';

/** Where the checkout and the agent's state live inside, as the unit in contrib/systemd expects. */
export const IN_CHECKOUT = '/opt/mcp-agent';
export const IN_STATE = '/var/lib/mcp-agent';
export const IN_DB = `${IN_STATE}/agent.db`;

// HOST-FACTS, "Containers": runc (crun fails on hybrid cgroups here), lower ulimits (root lacks
// CAP_SYS_RESOURCE), no network (the default one adds a bridge and NAT rules to the host).
const PODMAN_RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768', '--network', 'none', '--systemd=always'];

// Podman inside (containers: true). On these cgroup v1 hybrid hosts podman's --systemd=always mounts
// the cgroup controllers read-only, so an inner `podman run` cannot make its cgroups (tried:
// SYS_ADMIN & co. instead of --privileged -> "mkdir /sys/fs/cgroup/cpuset/machine.slice: read-only
// file system"). --privileged makes them writable; --cgroupns=private makes the paths in
// /proc/self/cgroup match the mounts, without which runc fails with "error mounting cgroup … stat
// /sys/fs/cgroup/…: no such file". Inside, podman's default cgroup manager under systemd (systemd)
// works; cgroupfs fails the same way. Storage is vfs (baked in by scripts/systemd-rootfs).
const CONTAINER_FLAGS = ['--privileged', '--cgroupns=private'];

export interface SystemdNodeOptions {
  /** Bind-mount the guest image dir (var/images) read-only at <state>/images. */
  guestImages?: boolean;
  /** Make podman work inside and load the tests' IMAGE into its storage (no registry here). */
  containers?: boolean;
}

/**
 * Why this machine cannot run the suite, or undefined when it can. Only what is outside the
 * project's control is a reason to skip (no podman, not root, no Debian mirror for the rootfs);
 * a systemd that boots but misbehaves is a failure, not a skip.
 */
export async function systemdUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the systemd suite needs root (podman with --systemd=always, mmdebstrap)';
  const p = await execa('podman', ['--version'], { reject: false });
  if (p.exitCode !== 0) return `podman is not usable here: ${String(p.stderr || p.stdout).trim() || 'not installed'}`;
  return undefined;
}

/** Builds or finds the cached rootfs (fast when cached) and returns its path, or throws with why. */
export async function systemdRootfs(): Promise<string> {
  const r = await execa(join(ROOT, 'scripts/systemd-rootfs'), [], { reject: false, timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`scripts/systemd-rootfs failed (${r.exitCode}): ${String(r.stderr).slice(-2000)}`);
  return String(r.stdout).trim().split('\n').pop()!;
}

export class SystemdNode {
  /** Host side of <state>: the registry, vm/ and the agent's socket. */
  readonly stateDir = mkdtempSync(join(tmpdir(), 'systemd-node-'));
  readonly name = `mcp-systemd-test-${randomBytes(4).toString('hex')}`;
  private started = false;

  private constructor(private readonly rootfs: string) {}

  /**
   * Boots a fresh container and waits for systemd. Returns the node and what
   * `systemctl is-system-running` said (running, or degraded with the failed units named).
   */
  static async boot(opts: SystemdNodeOptions = {}): Promise<{ node: SystemdNode; state: string; bootMs: number }> {
    const node = new SystemdNode(await systemdRootfs());
    try {
      const t0 = Date.now();
      const state = await node.start(opts);
      return { node, state, bootMs: Date.now() - t0 };
    } catch (err) {
      await node.cleanup();
      throw err;
    }
  }

  private async start(opts: SystemdNodeOptions): Promise<string> {
    const mounts = ['-v', `${ROOT}:${IN_CHECKOUT}:ro`, '-v', '/usr/bin/node:/usr/bin/node:ro', '-v', `${this.stateDir}:${IN_STATE}`];
    // A worktree's node_modules (and var/images) may be symlinks out of the checkout: mount their
    // targets at the same path so the links resolve inside too.
    const nm = join(ROOT, 'node_modules');
    const nmReal = realpathSync(nm);
    if (nmReal !== nm) mounts.push('-v', `${nmReal}:${nmReal}:ro`);
    if (opts.guestImages) {
      const images = realpathSync(join(ROOT, 'var/images'));
      if (!existsSync(join(images, 'guest.manifest'))) throw new Error(`no guest image in ${images}: run scripts/build-guest`);
      mkdirSync(join(this.stateDir, 'images'));
      mounts.push('-v', `${images}:${IN_STATE}/images:ro`);
    }
    // `:O` mounts the cached rootfs as an overlay: the cache is never written, and parallel
    // containers share it.
    this.started = true;
    const extra = opts.containers ? CONTAINER_FLAGS : [];
    const r = await execa('podman', ['run', '-d', '--name', this.name, ...PODMAN_RUN_FLAGS, ...extra, ...mounts, '--rootfs', `${this.rootfs}:O`, '/sbin/init'], { reject: false });
    if (r.exitCode !== 0) throw new Error(`podman run ${this.name} failed (${r.exitCode}): ${String(r.stderr)}`);
    const state = await this.waitForSystemd();
    if (opts.containers) await this.loadImage(IMAGE);
    // Without the privileges above, podman inside cannot run containers, yet the agent would still
    // call it, and each call leaves a pause process (catatonit) in the agent's unit: the VM suites'
    // "nothing left in the unit" checks would see it. Such a node has no podman, as before the
    // rootfs had one (its container runtime shows as not listing, which those suites do not use).
    else await this.ok(['rm', '-f', '/usr/bin/podman']);
    return state;
  }

  /**
   * Copies a host image into the inner podman's storage: `podman save` here into the state dir
   * (bind-mounted), `podman load` inside. No registry is reachable, and the inner podman has its
   * own storage (vfs, in the container's overlay), so this is the only way in.
   */
  private async loadImage(image: string): Promise<void> {
    const tar = join(this.stateDir, 'image.tar');
    const saved = await execa('podman', ['save', '--quiet', '--output', tar, image], { reject: false });
    if (saved.exitCode !== 0) throw new Error(`podman save ${image} failed (${saved.exitCode}): ${String(saved.stderr)}; scripts/build-image makes it`);
    try {
      await this.ok(['podman', 'load', '--quiet', '--input', `${IN_STATE}/image.tar`]);
    } finally {
      rmSync(tar, { force: true });
    }
  }

  /** Waits until systemd has finished booting: `running`, or `degraded` (then names the failed units). */
  private async waitForSystemd(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      // is-system-running exits non-zero for every state but running: read its output instead.
      const r = await this.exec(['systemctl', 'is-system-running']);
      last = (r.stdout || r.stderr).trim();
      if (last === 'running') return last;
      if (last === 'degraded') {
        const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain']);
        return `degraded: ${failed.stdout.trim()}`;
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    const journal = await this.exec(['journalctl', '-b', '--no-pager', '-n', '40']);
    throw new Error(`systemd in ${this.name} did not finish booting in ${timeoutMs} ms (last: ${last})\n${journal.stdout}`);
  }

  /** Runs a command inside the container; never throws on a non-zero exit. */
  async exec(cmd: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    const r = await execa('podman', ['exec', ...(opts.input === undefined ? [] : ['-i']), this.name, ...cmd], {
      reject: false,
      input: opts.input,
      stdin: opts.input === undefined ? 'ignore' : undefined,
      timeout: opts.timeoutMs ?? 180_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** Runs a command inside and fails with its output when it exits non-zero. */
  async ok(cmd: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.exitCode !== 0) throw new Error(`in ${this.name}: ${cmd.join(' ')} exited ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** The agent's CLI inside, on the service's registry. */
  agent(args: string[], opts: { input?: string } = {}): Promise<CliResult> {
    return this.exec(['env', 'AGENT_LOG_LEVEL=warn', 'node', `${IN_CHECKOUT}/bin/agent.js`, '--db', IN_DB, ...args], opts);
  }

  /** A unit's property (`systemctl show -p NAME --value`). */
  async prop(unit: string, name: string): Promise<string> {
    return (await this.ok(['systemctl', 'show', unit, '-p', name, '--value'])).trim();
  }

  /** Removes the container (ending everything in it: systemd, the agent, QEMU) and the state dir. */
  async cleanup(): Promise<void> {
    if (this.started) await execa('podman', ['rm', '-f', '-t', '0', this.name], { reject: false });
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
