/**
 * The probe runners: one probe of one workload, as data in (target, check), verdict out (ok and the
 * output that says why). Containers run with --network none, so tcp and http enter the network
 * namespace of the container's process (`nsenter -t PID -n`, PID from `podman inspect`, kept per
 * container run) and probe 127.0.0.1 there with `nc -z` (netcat-openbsd, through a shell kept in
 * the namespace: netns-session.ts) or `curl`: no port is ever published. VMs are reached from the agent itself (its forwarded SLIRP port on 127.0.0.1, or
 * the bridge address), exec goes through `podman exec` or the runtime's pinned SSH. A probe never
 * throws: what goes wrong is a failed probe with its reason.
 */
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';
import type { RuntimeKind } from '../../manifest/schema.js';
import { HTTP_DEFAULTS, type HealthCheck } from '../../manifest/health-schema.js';
import type { Runtime } from '../../runtime/types.js';
import { runProbeCommand, type SpawnResult } from './spawn.js';
import { NetnsSession } from './netns-session.js';

export interface ProbeTarget {
  workload: string;
  runtime: RuntimeKind;
  /** Container id or QEMU pid: the run probed. */
  handle: string;
  check: HealthCheck;
  /** VMs, tcp and http: where the guest port is reached from the agent. */
  endpoint?: { host: string; port: number; slirp: boolean } | undefined;
}

export interface ProbeResult {
  ok: boolean;
  output: string;
}

export interface Prober {
  probe(t: ProbeTarget): Promise<ProbeResult>;
  /** The run is over: what was kept for it (a container's PID) goes. */
  forget(handle: string): void;
}

export interface HostProberOptions {
  podman: { binary: string; env?: NodeJS.ProcessEnv | undefined };
  runtimes: Map<RuntimeKind, Runtime>;
  nsenter?: string;
  nc?: string;
  curl?: string;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 500);

/** How a command-based probe ended, in words. */
function commandVerdict(r: SpawnResult, what: string, timeoutMs: number): ProbeResult {
  if (r.error) return { ok: false, output: `${what} could not run: ${r.error}` };
  if (r.timedOut) return { ok: false, output: `${what} timed out after ${timeoutMs / 1000} s${r.output ? `: ${oneLine(r.output)}` : ''}` };
  if (r.code === 0) return { ok: true, output: oneLine(r.output) };
  return { ok: false, output: `${what} exited ${r.code ?? 'on a signal'}${r.output ? `: ${oneLine(r.output)}` : ''}` };
}

export class HostProber implements Prober {
  /** Container id → PID of its process for this run (a container started again gets a new PID). */
  private readonly pids = new Map<string, number>();
  /** Container id → the shell in its namespace that runs its tcp probes (netns-session.ts). */
  private readonly sessions = new Map<string, NetnsSession>();

  constructor(private readonly o: HostProberOptions) {}

  forget(handle: string): void {
    this.pids.delete(handle);
    this.sessions.get(handle)?.close();
    this.sessions.delete(handle);
  }

  async probe(t: ProbeTarget): Promise<ProbeResult> {
    const timeoutMs = Math.round(t.check.timeout_seconds * 1000);
    try {
      if (t.check.kind === 'exec') return await (t.runtime === 'container' ? this.podmanExec(t, timeoutMs) : this.vmExec(t, timeoutMs));
      if (t.runtime === 'container') return await this.inNetns(t, timeoutMs);
      return await this.vmNet(t, timeoutMs);
    } catch (err) {
      return { ok: false, output: oneLine((err as Error).message) };
    }
  }

  private async pidOf(handle: string, timeoutMs: number): Promise<number> {
    const known = this.pids.get(handle);
    if (known !== undefined) return known;
    const r = await runProbeCommand(this.o.podman.binary, ['inspect', '--format', '{{.State.Pid}}', handle], Math.max(timeoutMs, 5000), this.o.podman.env);
    const pid = Number(r.output.trim());
    if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) throw new Error(`cannot find the container's process: podman inspect: ${oneLine(r.output) || r.error || 'no PID'}`);
    this.pids.set(handle, pid);
    return pid;
  }

  /** tcp: `nc -z`; http: `curl` for the status code; both inside the container's network namespace. */
  private async inNetns(t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
    // A container started again outside the agent keeps its id but not its process: the PID kept
    // (and the shell holding the old namespace open) are dropped, one stat per probe.
    const kept = this.pids.get(t.handle);
    if (kept !== undefined && !existsSync(`/proc/${kept}`)) this.forget(t.handle);
    const pid = await this.pidOf(t.handle, timeoutMs);
    const port = String(t.check.port);
    const enter = ['-t', String(pid), '-n', '--'];
    const nsenter = this.o.nsenter ?? 'nsenter';
    if (t.check.kind === 'tcp') return this.tcpInNetns(t, pid, timeoutMs);
    const url = `http://127.0.0.1:${port}${t.check.path ?? HTTP_DEFAULTS.path}`;
    const r = await runProbeCommand(nsenter, [...enter, this.o.curl ?? 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(t.check.timeout_seconds), url], timeoutMs);
    // curl writes the status code (000: none) before its error: the error alone says why.
    if (r.code !== 0 || r.timedOut) return this.afterNsenter(t, r, commandVerdict({ ...r, output: r.output.replace(/^000\s*/, '') }, `GET ${url}`, timeoutMs));
    return statusVerdict(url, Number(r.output.trim()), t.check);
  }

  /** `nc -z` through the container's kept shell; a broken or silent one is dropped (a new one next time). */
  private async tcpInNetns(t: ProbeTarget, pid: number, timeoutMs: number): Promise<ProbeResult> {
    const where = `tcp 127.0.0.1:${t.check.port}`;
    let s = this.sessions.get(t.handle);
    if (!s?.alive) {
      s = new NetnsSession(pid, { nsenter: this.o.nsenter, nc: this.o.nc });
      this.sessions.set(t.handle, s);
    }
    const r = await s.probe(t.check.port ?? 0, timeoutMs);
    if (r) return r.code === 0 ? { ok: true, output: oneLine(r.output) } : { ok: false, output: `${where} exited ${r.code}: ${oneLine(r.output)}` };
    this.sessions.delete(t.handle);
    if (/nsenter:/.test(s.lastError)) this.pids.delete(t.handle);
    return { ok: false, output: `${where}: ${s.lastError ? oneLine(s.lastError) : `no answer within ${timeoutMs / 1000} s`}` };
  }

  /** nsenter failing on the namespace itself means the PID kept is stale: look it up again next time. */
  private afterNsenter(t: ProbeTarget, r: SpawnResult, v: ProbeResult): ProbeResult {
    if (!v.ok && /nsenter:/.test(r.output)) this.pids.delete(t.handle);
    return v;
  }

  private async podmanExec(t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
    const argv = t.check.command ?? [];
    const r = await runProbeCommand(this.o.podman.binary, ['exec', t.handle, ...argv], timeoutMs, this.o.podman.env);
    return commandVerdict(r, `exec ${argv.join(' ')}`, timeoutMs);
  }

  /** Over the runtime's pinned SSH. A command that outlives its timeout is reported failed (it ends on its own). */
  private async vmExec(t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
    const rt = this.o.runtimes.get(t.runtime);
    if (!rt) return { ok: false, output: `no ${t.runtime} runtime` };
    const argv = t.check.command ?? [];
    let out = '';
    const keep = (b: Buffer): void => void (out.length < 4096 ? (out += b.toString('utf8')) : undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    try {
      const code = await Promise.race([rt.exec(t.workload, argv, { stdout: keep, stderr: keep }), timeout]);
      if (code === 'timeout') return { ok: false, output: `exec ${argv.join(' ')} timed out after ${timeoutMs / 1000} s` };
      return code === 0 ? { ok: true, output: oneLine(out) } : { ok: false, output: `exec ${argv.join(' ')} exited ${code}${out ? `: ${oneLine(out)}` : ''}` };
    } finally {
      clearTimeout(timer);
    }
  }

  private async vmNet(t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
    const e = t.endpoint;
    if (!e) return { ok: false, output: `guest port ${t.check.port} is not reachable: no forward or address known for it` };
    if (t.check.kind === 'tcp') return tcpConnect(e.host, e.port, timeoutMs, e.slirp);
    const url = `http://${e.host}:${e.port}${t.check.path ?? HTTP_DEFAULTS.path}`;
    return httpGet(url, t.check, timeoutMs);
  }
}

function statusVerdict(url: string, code: number, check: HealthCheck): ProbeResult {
  const [lo, hi] = check.expected_status ?? HTTP_DEFAULTS.expected_status;
  const ok = code >= lo && code <= hi;
  return { ok, output: `GET ${url}: ${code}${ok ? '' : ` (expected ${lo}-${hi})`}` };
}

/**
 * A TCP connect from the agent. Through SLIRP the host side always accepts (QEMU connects to the
 * guest only then, and closes when the guest refuses): a connection that the far end closes
 * within 200 ms counts as refused.
 */
function tcpConnect(host: string, port: number, timeoutMs: number, slirp: boolean): Promise<ProbeResult> {
  const where = `tcp ${host}:${port}`;
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let done = false;
    const end = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => end({ ok: false, output: `${where}: no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    s.on('error', (err) => end({ ok: false, output: `${where}: ${err.message}` }));
    s.on('connect', () => {
      if (!slirp) return end({ ok: true, output: `${where}: connected` });
      s.on('close', () => end({ ok: false, output: `${where}: closed at once (nothing listens on the guest port)` }));
      setTimeout(() => end({ ok: true, output: `${where}: connected` }), Math.min(200, timeoutMs)).unref();
    });
  });
}

function httpGet(url: string, check: HealthCheck, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, headers: { 'user-agent': 'mcp-agent-health' } }, (res) => {
      res.resume();
      resolve(statusVerdict(url, res.statusCode ?? 0, check));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) => resolve({ ok: false, output: `GET ${url}: ${err.message}` }));
    req.end();
  });
}
