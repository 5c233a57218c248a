/**
 * Unikernel VMs under QEMU. Each VM runs detached (-daemonize), so it outlives the agent; its
 * state dir holds what is needed to find it again. Quirks owned here (see HOST-FACTS):
 * - KVM may exist and not work: the accelerator is chosen by accel.ts.
 * - QEMU exits 0 after -daemonize even for a guest that will reset at once: a VM counts as
 *   running only once its SSH answers with the pinned host key.
 * - QMP serves one client at a time: list() never uses QMP (so `agent status` works while the
 *   agent holds the connection); the agent's watcher keeps one connection per VM for events and
 *   stop() reuses it.
 * - A disk image is never written: each VM boots a qcow2 overlay of it in its state dir.
 * This class sequences a VM's life; the parts are beside it: the launch as data (launch.ts,
 * args.ts), boot files and overlay (disk.ts), QMP watching (watch.ts), what a VM is now
 * (observe.ts), its process (process.ts), its systemd scope when scopes are on (scope.ts,
 * scope-unit.ts). TAPs are the host's (HostTaps, given).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExecError, RuntimeError } from '../../errors.js';
import type { HostTaps } from '../../net/types.js';
import { findExecutable, runBounded } from '../command.js';
import { SshConnectError, sshExec, waitForSsh, type SshTarget } from '../ssh.js';
import type { BootProgress, Capabilities, ExecIo, LogsOptions, Observed, Runtime, RuntimeEvent, WorkloadSpec } from '../types.js';
import { chooseAccel, probeHostVirt, type AccelMode } from './accel.js';
import { stateFiles } from './args.js';
import { attest, checkBootFiles, ensureOverlay } from './disk.js';
import { describeLaunch } from './launch.js';
import { observeVm } from './observe.js';
import { consoleText, killVm, untilAborted, waitGone } from './process.js';
import type { ScopeMode } from './scope.js';
import { endScope, launchQemu } from './scope-unit.js';
import { consoleTail as tailOf, isReady, livePid, readRecord, type VmRecord } from './state.js';
import { QmpWatch } from './watch.js';

export interface QemuOptions {
  binary: string;
  imgBinary: string;
  vmDir: string;
  agentId: string;
  accel: AccelMode;
  bootTimeoutMs: number;
  sshUser: string;
  /** Path of the private key the agent logs in with. */
  sshKeyPath: string;
  /** Kernel command line every kernel boot gets before the component's own `cmdline`. */
  baseCmdline: string;
  /** The host's TAPs, for VMs on the bridge. */
  taps: HostTaps;
  /** Whether each QEMU starts in its own systemd scope (qemu.systemd_scope, resolved: scope.ts). */
  scope: ScopeMode;
  /** Told each boot's launch → SSH ready time (the agent's metrics); none for one-shot commands. */
  onBooted?: ((name: string, seconds: number) => void) | undefined;
  /** Told when a start begins and ends waiting for SSH: progress output for an operator, nothing else. */
  onBootProgress?: ((p: BootProgress) => void) | undefined;
}

/** Bounds of QEMU's own commands: `--version` answers in ms, `-daemonize` returns in 50-95 ms. */
const PROBE_TIMEOUT_MS = 10_000;
const LAUNCH_TIMEOUT_MS = 30_000;

/** unix socket paths are limited to 107 bytes: refuse a VM dir that would not fit. */
const SOCKET_PATH_MAX = 107;

export class QemuRuntime implements Runtime {
  readonly kind = 'unikernel' as const;
  /** One QMP connection per live VM, held by the watcher; stop() borrows it. */
  private readonly qmp: QmpWatch;

  constructor(private readonly o: QemuOptions) {
    this.qmp = new QmpWatch(o.vmDir, o.agentId);
  }

  private dirOf(name: string): string {
    return join(this.o.vmDir, name);
  }

  async probe(): Promise<Capabilities> {
    try {
      const r = await runBounded(this.o.binary, ['--version'], { runtime: 'qemu', operation: 'probe', timeoutMs: PROBE_TIMEOUT_MS, read: true });
      const accel = chooseAccel(this.o.accel, probeHostVirt());
      return { available: true, detail: `${r.stdout.split('\n')[0]}, accel ${accel}` };
    } catch (err) {
      const e = err as { code?: string; shortMessage?: string };
      if (err instanceof RuntimeError) return { available: false, detail: err.message };
      return { available: false, detail: e.code === 'ENOENT' ? `${this.o.binary} is not installed (apt-get install qemu-system-x86)` : e.shortMessage ?? String(err) };
    }
  }

  private probed: { at: number; caps: Capabilities } | undefined;

  /**
   * Before a start: the probe (a process spawn) is remembered for 30 s, so a QEMU installed or
   * removed meanwhile is noticed soon, not on every start.
   */
  private async probeCached(): Promise<Capabilities> {
    if (!this.probed || Date.now() - this.probed.at > 30_000) this.probed = { at: Date.now(), caps: await this.probe() };
    return this.probed.caps;
  }

  private async requireQemu(op: string, name?: string): Promise<void> {
    const p = await this.probeCached();
    if (!p.available) throw new RuntimeError('qemu', op, name, p.detail);
  }

  /**
   * list()'s check that QEMU is there: no spawn (list runs on every pass and every `agent status`,
   * and a `--version` spawn was a tenth of a status call's CPU); start() probes it for real.
   */
  private requireInstalled(op: string): void {
    if (!findExecutable(this.o.binary)) throw new RuntimeError('qemu', op, undefined, `${this.o.binary} is not installed (apt-get install qemu-system-x86)`);
  }

  /** Every VM dir of this agent. A VM whose QEMU is gone is `exited` until it is removed. */
  async list(): Promise<Observed[]> {
    // Without QEMU there is nothing this runtime can do or know for sure: say so.
    if (!existsSync(this.o.vmDir)) {
      this.requireInstalled('list');
      return [];
    }
    const records: Array<[string, VmRecord]> = [];
    for (const name of readdirSync(this.o.vmDir).sort()) {
      const dir = this.dirOf(name);
      const rec = readRecord(dir);
      if (rec && rec.agentId === this.o.agentId && rec.name === name) records.push([dir, rec]);
    }
    // One `ip` call, and only when a VM is on a bridge: is each such VM's TAP still on it?
    const taps = records.some(([, r]) => r.netMode === 'bridge') ? await this.o.taps.tapAttachments() : undefined;
    const out: Observed[] = [];
    for (const [dir, rec] of records) out.push(await observeVm(dir, rec, taps));
    this.requireInstalled('list');
    return out;
  }

  async start(w: WorkloadSpec): Promise<Observed> {
    const vm = w.vm;
    if (!vm) throw new RuntimeError('qemu', 'start', w.name, 'no VM placement (files, ports) was given');
    w.signal?.throwIfAborted();
    await this.requireQemu('start', w.name);
    if (!this.o.scope.on && this.o.scope.problem) throw new RuntimeError('qemu', 'start', w.name, `qemu.systemd_scope ${this.o.scope.problem}`);
    const dir = this.dirOf(w.name);
    const files = stateFiles(dir);
    if (Buffer.byteLength(files.qmp) > SOCKET_PATH_MAX) {
      throw new RuntimeError('qemu', 'start', w.name, `state dir ${dir} is too long for a unix socket path (${SOCKET_PATH_MAX} bytes): configure a shorter qemu.vm_dir`);
    }

    // Idempotence: a live VM of the same spec is adopted; anything else of ours here is replaced.
    const existing = readRecord(dir);
    let existed = existing !== undefined;
    if (existing) {
      const pid = livePid(dir, w.name);
      if (pid !== undefined && existing.specHash === w.specHash && existing.agentId === this.o.agentId) {
        if (isReady(dir)) return observeVm(dir, existing);
        // Booting since before this call (an earlier agent launched it): a stopping agent leaves
        // it as it found it, booting, for the next agent to adopt.
        return this.awaitReady(w, dir, existing, pid, false);
      }
      if (pid !== undefined) await killVm(w.name, dir);
      if (existing.specHash !== w.specHash) {
        rmSync(dir, { recursive: true, force: true });
        existed = false;
      } else {
        for (const f of [files.pidfile, files.qmp, files.ready, files.exit]) rmSync(f, { force: true });
      }
    }

    checkBootFiles(w);
    await attest(w);
    w.signal?.throwIfAborted();

    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      const record = await this.launch(w, dir);
      // Stopping while QEMU was launched: roll back now rather than boot a VM nobody waits for.
      w.signal?.throwIfAborted();
      const pid = livePid(dir, w.name);
      if (pid === undefined) {
        throw new RuntimeError('qemu', 'start', w.name, `QEMU exited right after starting; console:\n${tailOf(dir)}`);
      }
      return await this.awaitReady(w, dir, record, pid, !existed);
    } catch (err) {
      // Nothing half-started stays behind: no QEMU, no scope, no TAP, and no state dir for a VM that never ran.
      await killVm(w.name, dir).catch(() => undefined);
      await this.endScopeOf(w.name);
      if (w.vm?.net.mode === 'bridge') await this.o.taps.tapDown(w.vm.net.tap, `${this.o.agentId}:${w.name}`).catch(() => undefined);
      if (!existed) rmSync(dir, { recursive: true, force: true });
      else {
        for (const f of [files.pidfile, files.qmp, files.ready, files.exit]) rmSync(f, { force: true });
        // A rolled-back restart leaves the VM as it was (exited, its record's launch time), not
        // "launching" for LAUNCH_WINDOW_MS with nothing behind it.
        if (existing && w.signal?.aborted && err === w.signal.reason) writeFileSync(files.spec, `${JSON.stringify(existing, null, 2)}\n`, { mode: 0o600 });
      }
      throw err;
    }
  }

  private async launch(w: WorkloadSpec, dir: string): Promise<VmRecord> {
    const vm = w.vm!;
    const files = stateFiles(dir);
    const net = vm.net;
    const disk = await ensureOverlay(this.o.imgBinary, w, dir);
    const { args, record, scope } = describeLaunch({
      w: { ...w, vm },
      dir,
      agentId: this.o.agentId,
      accel: chooseAccel(this.o.accel, probeHostVirt()),
      disk,
      sshUser: this.o.sshUser,
      baseCmdline: this.o.baseCmdline,
      now: new Date(),
      scope: this.o.scope.on ? { overheadMib: this.o.scope.overheadMib } : undefined,
    });
    // The record is written before the TAP and QEMU exist: an agent that dies right after
    // finds the VM (its pid, its TAP) on its next list, and removes what is left.
    writeFileSync(files.spec, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    writeFileSync(files.console, '');
    if (net.mode === 'bridge') await this.o.taps.tapUp(net.tap, net.bridge, `${this.o.agentId}:${w.name}`);
    try {
      await launchQemu(this.o.binary, args, scope, { runtime: 'qemu', operation: 'start', workload: w.name, timeoutMs: LAUNCH_TIMEOUT_MS });
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      const e = err as { stderr?: string; shortMessage?: string };
      const msg = (e.stderr ?? '').trim().split('\n').pop() || e.shortMessage || String(err);
      throw new RuntimeError('qemu', 'start', w.name, /hostfwd|Could not set up host forwarding/i.test(msg) ? `a forwarded host port is taken: ${msg}` : msg);
    }
    this.qmp.rescan();
    return record;
  }

  private sshTarget(rec: VmRecord): SshTarget {
    return { host: rec.sshHost, port: rec.sshPort, user: rec.sshUser, privateKey: readFileSync(this.o.sshKeyPath), hostKey: rec.hostKey };
  }

  /**
   * Waits for SSH with the pinned key; on failure the caller cleans up. Rejects with the start's
   * abort reason as soon as its signal fires (the caller then rolls back).
   */
  private async awaitReady(w: WorkloadSpec, dir: string, rec: VmRecord, pid: number, fresh: boolean): Promise<Observed> {
    const alive = (): boolean => !w.signal?.aborted && livePid(dir, w.name) === pid;
    const since = Date.now();
    const tell = (phase: BootProgress['phase']): void => this.o.onBootProgress?.({ key: w.key, workload: w.name, phase, since });
    tell('waiting');
    let why: string | undefined = 'interrupted';
    try {
      why = await untilAborted(waitForSsh(this.sshTarget(rec), Date.now() + this.o.bootTimeoutMs, alive), w.signal);
    } finally {
      tell(why === undefined ? 'ready' : 'failed');
    }
    if (why) {
      const msg = `${why} within ${Math.round(this.o.bootTimeoutMs / 1000)} s of boot; console tail:\n${tailOf(dir)}`;
      if (!fresh) await killVm(w.name, dir).catch(() => undefined);
      throw new RuntimeError('qemu', 'start', w.name, msg);
    }
    writeFileSync(stateFiles(dir).ready, `${new Date().toISOString()}\n`);
    // From the launch time in the VM's record: right for a boot an earlier agent began, too.
    this.o.onBooted?.(w.name, (Date.now() - Date.parse(rec.launchedAt)) / 1000);
    return observeVm(dir, rec);
  }

  /** Graceful: ACPI powerdown, the grace period, then QMP quit, SIGTERM, SIGKILL. Its scope ends with it. */
  async stop(name: string, graceSeconds: number): Promise<string> {
    const how = await this.stopQemu(name, graceSeconds);
    await this.endScopeOf(name);
    return how;
  }

  /** The scope the VM's record names, once its QEMU is gone: no spawn for a VM started without one. */
  private async endScopeOf(name: string): Promise<void> {
    await endScope(readRecord(this.dirOf(name))?.scope, name);
  }

  private async stopQemu(name: string, graceSeconds: number): Promise<string> {
    const dir = this.dirOf(name);
    if (livePid(dir, name) === undefined) return 'not running';
    if (graceSeconds > 0) {
      const asked = await this.qmp.withQmp(name, (c) => c.systemPowerdown()).then(() => true, () => false);
      if (asked && (await waitGone(dir, name, graceSeconds * 1000))) return 'powered off (ACPI powerdown)';
    }
    await this.qmp.withQmp(name, (c) => c.quit()).catch(() => undefined);
    if (await waitGone(dir, name, 2000)) return `quit through QMP${graceSeconds > 0 ? ` after ${graceSeconds} s without powering off` : ''}`;
    await killVm(name, dir);
    return 'killed';
  }

  async remove(name: string): Promise<void> {
    const dir = this.dirOf(name);
    this.qmp.drop(name);
    await killVm(name, dir);
    await this.endScopeOf(name);
    const tap = readRecord(dir)?.tap;
    if (tap) await this.o.taps.tapDown(tap, `${this.o.agentId}:${name}`);
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * TAPs of this agent whose VM has no state dir any more (an agent that crashed between making
   * a TAP and recording or removing the VM): deleted. Returns their names.
   */
  async collectGarbage(): Promise<string[]> {
    const removed: string[] = [];
    for (const [owner, tap] of await this.o.taps.agentTaps()) {
      const [agentId, name] = owner.split(':');
      if (agentId !== this.o.agentId || !name) continue;
      const rec = readRecord(this.dirOf(name));
      if (rec?.tap === tap) continue;
      await this.o.taps.tapDown(tap, owner);
      removed.push(tap);
    }
    return removed;
  }

  /** QMP watching (watch.ts): a guest's SHUTDOWN or a QEMU gone is reported at once. */
  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    return this.qmp.watch(onEvent);
  }

  async exec(name: string, argv: string[], io: ExecIo): Promise<number> {
    const dir = this.dirOf(name);
    const rec = readRecord(dir);
    if (!rec || rec.agentId !== this.o.agentId) throw new ExecError(name, 'no such VM of this agent (not started yet, or removed)');
    if (livePid(dir, name) === undefined) throw new ExecError(name, 'the VM is not running');
    // ssh runs a command line through the guest's shell: quote each argument for it.
    const line = argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
    try {
      const r = await sshExec(this.sshTarget(rec), line, io);
      return r.signal ? 128 + 15 : r.code;
    } catch (err) {
      // A connection that drops under a running command resolves 255 (as OpenSSH); what throws is SSH itself failing.
      const why = err instanceof SshConnectError ? 'the VM cannot be reached over SSH' : 'SSH to the VM failed';
      throw new ExecError(name, `${why} (${(err as Error).message})`, { cause: err });
    }
  }

  /** The serial console; with follow, new output as it is written, until the signal aborts. */
  async *logs(name: string, opts: LogsOptions): AsyncIterable<string> {
    const file = stateFiles(this.dirOf(name)).console;
    if (opts.since !== undefined) throw new RuntimeError('qemu', 'logs', name, 'a VM\'s serial console has no timestamps: --since cannot be honoured (use --tail N)');
    if (!existsSync(file)) throw new RuntimeError('qemu', 'logs', name, 'no such VM (no console log)');
    yield* consoleText(file, opts);
  }
}
