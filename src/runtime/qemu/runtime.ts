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
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../../errors.js';
import { runBounded } from '../command.js';
import { macFor } from '../../identity.js';
import { QmpClient } from '../qmp.js';
import { consoleTail as tailOf, isReady, livePid, readPid, readRecord, type VmRecord } from './state.js';
import { qemuArgs, stateFiles } from './args.js';
import { readExit, recordExit } from './exit.js';
import { chooseAccel, probeHostVirt, type AccelMode } from './accel.js';
import { probeBanner, sshExec, waitForSsh, type SshTarget } from '../ssh.js';
import type { HostTaps } from '../../net/types.js';
import type { Capabilities, ExecIo, Observed, Runtime, RuntimeEvent, WorkloadSpec } from '../types.js';

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
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bounds of QEMU's own commands: `--version` answers in ms, `-daemonize` returns in 50-95 ms. */
const PROBE_TIMEOUT_MS = 10_000;
const LAUNCH_TIMEOUT_MS = 30_000;
const IMG_TIMEOUT_MS = 30_000;

/** How long a VM record without a pidfile counts as launching (QEMU's -daemonize takes ~50 ms). */
const LAUNCH_WINDOW_MS = 30_000;

/** unix socket paths are limited to 107 bytes: refuse a VM dir that would not fit. */
const SOCKET_PATH_MAX = 107;

export class QemuRuntime implements Runtime {
  readonly kind = 'unikernel' as const;
  /** One QMP connection per live VM, held by the watcher; stop() borrows it. */
  private readonly qmp = new Map<string, QmpClient>();
  private rescan: (() => void) | undefined;

  constructor(private readonly o: QemuOptions) {}

  private dirOf(name: string): string {
    return join(this.o.vmDir, name);
  }

  async probe(): Promise<Capabilities> {
    try {
      const r = await runBounded(this.o.binary, ['--version'], { runtime: 'qemu', operation: 'probe', timeoutMs: PROBE_TIMEOUT_MS, read: true });
      const accel = chooseAccel(this.o.accel, probeHostVirt());
      return { available: true, detail: `${String(r.stdout).split('\n')[0]}, accel ${accel}` };
    } catch (err) {
      const e = err as { code?: string; shortMessage?: string };
      if (err instanceof RuntimeError) return { available: false, detail: err.message };
      return { available: false, detail: e.code === 'ENOENT' ? `${this.o.binary} is not installed (apt-get install qemu-system-x86)` : e.shortMessage ?? String(err) };
    }
  }

  private probed: { at: number; caps: Capabilities } | undefined;

  /**
   * list() runs on every pass and every `agent status`: the probe (a process spawn) is remembered
   * for 30 s, so a QEMU installed or removed meanwhile is noticed soon, not on every call.
   */
  private async probeCached(): Promise<Capabilities> {
    if (!this.probed || Date.now() - this.probed.at > 30_000) this.probed = { at: Date.now(), caps: await this.probe() };
    return this.probed.caps;
  }

  private async requireQemu(op: string, name?: string): Promise<void> {
    const p = await this.probeCached();
    if (!p.available) throw new RuntimeError('qemu', op, name, p.detail);
  }

  /** Every VM dir of this agent. A VM whose QEMU is gone is `exited` until it is removed. */
  async list(): Promise<Observed[]> {
    // Without QEMU there is nothing this runtime can do or know for sure: say so.
    if (!existsSync(this.o.vmDir)) {
      await this.requireQemu('list');
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
    for (const [dir, rec] of records) out.push(await this.observe(dir, rec, taps));
    await this.requireQemu('list');
    return out;
  }

  private async observe(dir: string, rec: VmRecord, taps?: Map<string, string | undefined>): Promise<Observed> {
    const pid = livePid(dir, rec.name);
    let state: Observed['state'] = 'exited';
    // The record is written just before QEMU is launched (so a crash mid-launch is recoverable):
    // no pidfile yet and a fresh record means the launch is under way, not that the VM died.
    if (pid === undefined && readPid(dir) === undefined && Date.now() - Date.parse(rec.launchedAt) < LAUNCH_WINDOW_MS) {
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

  /** sha256 of the boot image, checked before every boot when the component declares one. */
  private async attest(w: WorkloadSpec): Promise<void> {
    const expected = w.spec.image_sha256;
    if (!expected) return;
    const file = w.vm?.files.image ?? w.vm?.files.kernel;
    if (!file) return;
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => createReadStream(file).on('data', (d) => hash.update(d)).on('end', resolve).on('error', reject));
    const actual = hash.digest('hex');
    if (actual !== expected) {
      throw new RuntimeError('qemu', 'start', w.name, `image attestation failed: ${file} has sha256 ${actual}, the component expects ${expected}; not booting it`);
    }
  }

  async start(w: WorkloadSpec): Promise<Observed> {
    const vm = w.vm;
    if (!vm) throw new RuntimeError('qemu', 'start', w.name, 'no VM placement (files, ports) was given');
    w.signal?.throwIfAborted();
    await this.requireQemu('start', w.name);
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
        if (isReady(dir)) return this.observe(dir, existing);
        // Booting since before this call (an earlier agent launched it): a stopping agent leaves
        // it as it found it, booting, for the next agent to adopt.
        return this.awaitReady(w, dir, existing, pid, false);
      }
      if (pid !== undefined) await this.kill(w.name, dir);
      if (existing.specHash !== w.specHash) {
        rmSync(dir, { recursive: true, force: true });
        existed = false;
      } else {
        for (const f of [files.pidfile, files.qmp, files.ready, files.exit]) rmSync(f, { force: true });
      }
    }

    for (const [field, path] of Object.entries(vm.files)) {
      if (path && !existsSync(path)) throw new RuntimeError('qemu', 'start', w.name, `${field} ${path} does not exist`);
    }
    await this.attest(w);
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
      // Nothing half-started stays behind: no QEMU, no TAP, and no state dir for a VM that never ran.
      await this.kill(w.name, dir).catch(() => undefined);
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
    const s = w.spec;
    let disk: string | undefined;
    if (vm.files.image) {
      disk = files.overlay;
      if (!existsSync(disk)) {
        const img = { runtime: 'qemu', operation: 'start', workload: w.name, timeoutMs: IMG_TIMEOUT_MS };
        const info = await runBounded(this.o.imgBinary, ['info', '--output', 'json', vm.files.image], img).catch((err: { stderr?: string }) => {
          if (err instanceof RuntimeError) throw err;
          throw new RuntimeError('qemu', 'start', w.name, `qemu-img cannot read ${vm.files.image}: ${err.stderr ?? String(err)}`);
        });
        const format = (JSON.parse(String(info.stdout)) as { format?: string }).format ?? 'raw';
        await runBounded(this.o.imgBinary, ['create', '-q', '-f', 'qcow2', '-F', format, '-b', vm.files.image, disk], img);
      }
    }
    const accel = chooseAccel(this.o.accel, probeHostVirt());
    const net = vm.net;
    const mac = macFor(w.name);
    // The guest learns its static IP without DHCP: `ip=` on a kernel command line, the SMBIOS OEM
    // string `agent.ip=` for a disk image (the guest image's /init reads both; docs/guest-image.md).
    const ipArg = net.mode === 'bridge' ? `${net.ip}/${net.prefix}:${net.gateway}` : undefined;
    const append = vm.files.kernel ? [this.o.baseCmdline, ipArg ? `ip=${ipArg}` : '', s.cmdline ?? ''].filter(Boolean).join(' ') : undefined;
    const args = qemuArgs({
      name: w.name,
      memoryMib: s.memory ?? 128,
      vcpus: s.vcpus ?? 1,
      accel,
      stateDir: dir,
      boot: { disk, diskFormat: 'qcow2', kernel: vm.files.kernel, initrd: vm.files.initrd, append },
      net: net.mode === 'slirp' ? { mode: 'slirp', sshPort: net.sshPort, forwards: net.forwards, mac } : { mode: 'bridge', tap: net.tap, mac },
      oemStrings: [`agent.name=${w.name}`, ...(ipArg ? [`agent.ip=${ipArg}`] : [])],
    });
    const sshHost = net.mode === 'bridge' ? net.ip : '127.0.0.1';
    const sshPort = net.mode === 'bridge' ? 22 : net.sshPort;
    const record: VmRecord = {
      agentId: this.o.agentId,
      name: w.name,
      service: w.key.service,
      component: w.key.component,
      specHash: w.specHash,
      sshHost,
      sshPort,
      hostKey: vm.hostKey,
      sshUser: this.o.sshUser,
      address: net.mode === 'bridge' ? net.ip : `127.0.0.1:${sshPort}`,
      netMode: net.mode,
      tap: net.mode === 'bridge' ? net.tap : undefined,
      bridge: net.mode === 'bridge' ? net.bridge : undefined,
      args,
      launchedAt: new Date().toISOString(),
    };
    // The record is written before the TAP and QEMU exist: an agent that dies right after
    // finds the VM (its pid, its TAP) on its next list, and removes what is left.
    writeFileSync(files.spec, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    writeFileSync(files.console, '');
    if (net.mode === 'bridge') await this.o.taps.tapUp(net.tap, net.bridge, `${this.o.agentId}:${w.name}`);
    try {
      await runBounded(this.o.binary, args, { runtime: 'qemu', operation: 'start', workload: w.name, timeoutMs: LAUNCH_TIMEOUT_MS });
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      const e = err as { stderr?: string; shortMessage?: string };
      const msg = (e.stderr ?? '').trim().split('\n').pop() || e.shortMessage || String(err);
      throw new RuntimeError('qemu', 'start', w.name, /hostfwd|Could not set up host forwarding/i.test(msg) ? `a forwarded host port is taken: ${msg}` : msg);
    }
    this.rescan?.();
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
    const why = await untilAborted(waitForSsh(this.sshTarget(rec), Date.now() + this.o.bootTimeoutMs, alive), w.signal);
    if (why) {
      const msg = `${why} within ${Math.round(this.o.bootTimeoutMs / 1000)} s of boot; console tail:\n${tailOf(dir)}`;
      if (!fresh) await this.kill(w.name, dir).catch(() => undefined);
      throw new RuntimeError('qemu', 'start', w.name, msg);
    }
    writeFileSync(stateFiles(dir).ready, `${new Date().toISOString()}\n`);
    return this.observe(dir, rec);
  }

  private async waitGone(dir: string, name: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (livePid(dir, name) === undefined) return true;
      await sleep(50);
    }
    return livePid(dir, name) === undefined;
  }

  /** A QMP connection to the VM: the watcher's if it holds one, else a fresh one (closed after). */
  private async withQmp<T>(name: string, dir: string, fn: (c: QmpClient) => Promise<T>): Promise<T> {
    const held = this.qmp.get(name);
    if (held?.isOpen) return fn(held);
    const c = await QmpClient.connect(stateFiles(dir).qmp, { timeoutMs: 2000 });
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }

  /** Graceful: ACPI powerdown, the grace period, then QMP quit, SIGTERM, SIGKILL. */
  async stop(name: string, graceSeconds: number): Promise<string> {
    const dir = this.dirOf(name);
    if (livePid(dir, name) === undefined) return 'not running';
    if (graceSeconds > 0) {
      const asked = await this.withQmp(name, dir, (c) => c.systemPowerdown()).then(() => true, () => false);
      if (asked && (await this.waitGone(dir, name, graceSeconds * 1000))) return 'powered off (ACPI powerdown)';
    }
    await this.withQmp(name, dir, (c) => c.quit()).catch(() => undefined);
    if (await this.waitGone(dir, name, 2000)) return `quit through QMP${graceSeconds > 0 ? ` after ${graceSeconds} s without powering off` : ''}`;
    await this.kill(name, dir);
    return 'killed';
  }

  /** SIGTERM, then SIGKILL, to the VM's own pid only (identity checked each time). */
  private async kill(name: string, dir: string): Promise<void> {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const pid = livePid(dir, name);
      if (pid === undefined) return;
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
      if (await this.waitGone(dir, name, 3000)) return;
    }
    if (livePid(dir, name) !== undefined) throw new RuntimeError('qemu', 'kill', name, 'QEMU did not exit on SIGKILL');
  }

  async remove(name: string): Promise<void> {
    const dir = this.dirOf(name);
    this.qmp.get(name)?.close();
    this.qmp.delete(name);
    await this.kill(name, dir);
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

  /**
   * Holds one QMP connection per live VM: a guest that powers itself off (SHUTDOWN) or a QEMU
   * killed behind the agent's back (the socket closes with no event) is reported at once.
   */
  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    let stopped = false;
    const scan = (): void => {
      if (stopped || !existsSync(this.o.vmDir)) return;
      for (const name of readdirSync(this.o.vmDir)) {
        const dir = this.dirOf(name);
        if (this.qmp.get(name)?.isOpen) continue;
        const rec = readRecord(dir);
        if (!rec || rec.agentId !== this.o.agentId || livePid(dir, name) === undefined) continue;
        this.qmp.delete(name);
        void QmpClient.connect(stateFiles(dir).qmp, { timeoutMs: 2000 }).then(
          (c) => {
            if (stopped) return void c.close();
            this.qmp.set(name, c);
            c.onEvent((e) => {
              if (e.event === 'SHUTDOWN') recordExit(dir, e);
              if (['SHUTDOWN', 'RESET', 'STOP', 'RESUME', 'GUEST_PANICKED'].includes(e.event)) onEvent({ runtime: 'unikernel', workload: name, status: e.event.toLowerCase(), exitCode: undefined });
            });
            c.onClose((info) => {
              if (this.qmp.get(name) === c) this.qmp.delete(name);
              if (!info.expected && !stopped) onEvent({ runtime: 'unikernel', workload: name, status: 'died', exitCode: undefined });
            });
          },
          () => undefined, // not reachable now (booting, or held elsewhere): the next scan retries
        );
      }
    };
    this.rescan = () => setTimeout(scan, 100).unref();
    scan();
    const timer = setInterval(scan, 2000);
    return () => {
      stopped = true;
      this.rescan = undefined;
      clearInterval(timer);
      for (const c of this.qmp.values()) void c.close();
      this.qmp.clear();
    };
  }

  async exec(name: string, argv: string[], io: ExecIo): Promise<number> {
    const dir = this.dirOf(name);
    const rec = readRecord(dir);
    if (!rec || rec.agentId !== this.o.agentId) throw new RuntimeError('qemu', 'exec', name, 'no such VM');
    if (livePid(dir, name) === undefined) throw new RuntimeError('qemu', 'exec', name, 'the VM is not running');
    // ssh runs a command line through the guest's shell: quote each argument for it.
    const line = argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
    try {
      const r = await sshExec(this.sshTarget(rec), line, io);
      return r.signal ? 128 + 15 : r.code;
    } catch (err) {
      throw new RuntimeError('qemu', 'exec', name, (err as Error).message, { cause: err });
    }
  }

  /** The serial console; with follow, new output as it is written, until the signal aborts. */
  async *logs(name: string, opts: { follow: boolean; signal?: AbortSignal }): AsyncIterable<string> {
    const file = stateFiles(this.dirOf(name)).console;
    if (!existsSync(file)) throw new RuntimeError('qemu', 'logs', name, 'no such VM (no console log)');
    let offset = 0;
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const size = existsSync(file) ? statSync(file).size : 0;
      if (size < offset) offset = 0; // a new launch truncated it
      while (offset < size) {
        const fd = openSync(file, 'r');
        try {
          const n = readSync(fd, buf, 0, Math.min(buf.length, size - offset), offset);
          offset += n;
          yield buf.subarray(0, n).toString('utf8').replaceAll('\r', '');
        } finally {
          closeSync(fd);
        }
      }
      if (!opts.follow || opts.signal?.aborted) return;
      await sleep(200);
    }
  }
}

/** Settles like `p`, or rejects with the signal's reason as soon as it aborts (`p` runs on). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Why a running bridge VM cannot be reached although it runs: its TAP was deleted, or taken off
 * the bridge (deleting a bridge frees its ports; a bridge made again does not take them back).
 */
function tapProblem(rec: VmRecord, taps: Map<string, string | undefined>): string | undefined {
  if (rec.netMode !== 'bridge' || !rec.tap) return undefined;
  if (!taps.has(rec.tap)) return `its TAP ${rec.tap} is gone`;
  const master = taps.get(rec.tap);
  if (!master) return `its TAP ${rec.tap} is on no bridge${rec.bridge ? ` (was ${rec.bridge})` : ''}`;
  if (rec.bridge && master !== rec.bridge) return `its TAP ${rec.tap} is on ${master}, not ${rec.bridge}`;
  return undefined;
}
