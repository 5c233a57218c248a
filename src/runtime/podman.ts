/**
 * Containers under podman, with argument arrays (never a shell): calls run to completion through
 * runBounded (command.ts), the streamed `exec` and `logs` through execa.
 * Quirks of this tool on these machines (see HOST-FACTS): crun fails here, so `--runtime runc`;
 * root lacks CAP_SYS_RESOURCE, so lower ulimits; `--init` so `podman stop` does not wait for a
 * PID 1 that ignores SIGTERM; `--network none` so nothing touches the main network namespace;
 * `--pull never` because no image registry is reachable and a pull would only hang.
 */
import { execa, type ExecaError } from 'execa';
import { ExecError, RuntimeError } from '../errors.js';
import { runBounded } from './command.js';
import { LABEL_AGENT } from '../identity.js';
import { PodmanApiError, type PodmanApi } from './podman-api.js';
import { DEFAULT_EXIT_DIR } from './podman-exits.js';
import { observedOf, parsePsJson } from './podman-ps.js';
import { PodmanService, type RuntimeLog } from './podman-service.js';
import { watchContainers } from './podman-watch.js';
import type { Capabilities, ExecIo, LogsOptions, Observed, Runtime, RuntimeEvent, WorkloadSpec, WorkloadState } from './types.js';

export interface PodmanOptions {
  /** Path or name of the podman binary. */
  binary: string;
  /** OCI runtime passed as `--runtime`. */
  ociRuntime: string;
  /** `--ulimit` values, e.g. `nofile=20000:20000`. */
  ulimits: string[];
  /** Marks this agent's containers; also the filter for list and events. */
  agentId: string;
  /** Extra environment for podman (e.g. CONTAINERS_CONF). */
  env?: Record<string, string>;
  /** Bound of a listing or probe (`ps`, `version`): what a pass or `status` waits at most. */
  listTimeoutMs: number;
  /** Bound of a change (`run`, `start`, `rm`); `stop` gets its grace period on top. */
  changeTimeoutMs: number;
  /** Where conmon writes exit files (see podman-exits.ts); default /run/libpod/exits. */
  exitDir?: string;
  /**
   * podman's REST API for listings and restarts while the agent runs (`watch`): 'auto' starts
   * `podman system service` on `apiSocket` (or uses `apiSocketExternal`, served by someone else);
   * 'off', or a service that does not answer, keeps every call on the CLI.
   */
  api?: 'auto' | 'off';
  /** Where the agent's own service listens (≤ 107 bytes): beside the registry, see defaultApiSocket. */
  apiSocket?: string;
  /** An existing podman API socket (`podman.api_socket`): used instead of starting a service. */
  apiSocketExternal?: string | undefined;
  log?: RuntimeLog | undefined;
}

/** The last meaningful line of podman's stderr: it prefixes with "Error: ". */
function podmanMessage(err: unknown): string {
  const e = err as Partial<ExecaError> & { code?: string };
  if (e.code === 'ENOENT') return 'podman is not installed (or not at the configured path)';
  const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
  const line = stderr.split('\n').filter(Boolean).pop();
  return line ?? e.shortMessage ?? String(err);
}

export class PodmanRuntime implements Runtime {
  readonly kind = 'container' as const;

  /** Our containers by id, as last seen: an exit file names only the id. */
  private readonly byId = new Map<string, Observed>();
  /** The API service while `watch` runs with podman.api = auto; otherwise every call is the CLI's. */
  private service: PodmanService | undefined;

  constructor(private readonly opts: PodmanOptions) {}

  private seenNow(o: Observed): Observed {
    this.byId.set(o.id, o);
    if (this.byId.size > 4096) this.byId.delete(this.byId.keys().next().value!);
    return o;
  }

  /** One podman call under its bound: a podman that hangs is killed and named, never waited on. */
  private async podman(args: string[], operation: string, workload?: string, timeoutMs = this.opts.changeTimeoutMs): Promise<string> {
    const read = operation === 'list' || operation === 'probe';
    try {
      const r = await runBounded(this.opts.binary, args, { runtime: 'podman', operation, workload, timeoutMs, read }, { env: this.opts.env });
      return r.stdout;
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      throw new RuntimeError('podman', operation, workload, podmanMessage(err), { cause: err });
    }
  }

  async probe(): Promise<Capabilities> {
    try {
      const v = await this.podman(['version', '--format', '{{.Client.Version}}'], 'probe', undefined, this.opts.listTimeoutMs);
      return { available: true, detail: `podman ${v.trim()}, runtime ${this.opts.ociRuntime}` };
    } catch (err) {
      return { available: false, detail: (err as Error).message };
    }
  }

  async list(): Promise<Observed[]> {
    return this.ps([]);
  }

  /**
   * This agent's containers, with extra `podman ps` filters (ANDed by podman): through the API when
   * its service answers, else (or when the service turns out gone) `podman ps -a`.
   */
  private async ps(extra: string[], operation = 'list'): Promise<Observed[]> {
    const filters = [`label=${LABEL_AGENT}=${this.opts.agentId}`, ...extra];
    const bound = { operation, timeoutMs: this.opts.listTimeoutMs };
    const viaApi = await this.throughApi((api) => api.listContainers(filters, bound));
    const text = viaApi ?? (await this.podman(['ps', '-a', '--format', 'json', ...filters.flatMap((f) => ['--filter', f])], operation, undefined, this.opts.listTimeoutMs));
    const source = viaApi === undefined ? 'podman ps' : 'the podman API';
    return parsePsJson(text, operation, source).map((c) => this.seenNow(observedOf(c)));
  }

  /**
   * `call` through the API when the service answers; undefined when the CLI must do it (no service,
   * or the request found it gone). podman's own refusal, or a service that hung, is thrown.
   */
  private async throughApi<T>(call: (api: PodmanApi) => Promise<T>): Promise<T | undefined> {
    const api = this.service?.ready();
    if (!api) return undefined;
    try {
      return await call(api);
    } catch (err) {
      if (!(err instanceof PodmanApiError)) throw err;
      this.service?.lost(err.kind, err.message);
      if (err.kind === 'unreachable') return undefined;
      throw err;
    }
  }

  /** `podman start` of a container (by id or name), through the API when it answers. */
  private async startContainer(ref: string, workload: string): Promise<void> {
    const done = await this.throughApi((api) => api.start(ref, { operation: 'start', workload, timeoutMs: this.opts.changeTimeoutMs }).then(() => true));
    if (!done) await this.podman(['start', ref], 'start', workload);
    this.opts.log?.debug({ workload, id: ref, via: done ? 'api' : 'cli' }, `podman start ${workload} (${done ? 'API' : 'CLI'})`);
  }

  inspect(name: string): Promise<Observed | undefined> {
    return this.find(name);
  }

  /** One container by exact name: a filtered ps, so starting n containers costs O(n), not O(n^2). */
  private async find(name: string): Promise<Observed | undefined> {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return (await this.ps([`name=^${escaped}$`], 'find')).find((o) => o.name === name);
  }

  runArgs(w: WorkloadSpec): string[] {
    const s = w.spec;
    const args = ['run', '--detach', '--name', w.name, '--runtime', this.opts.ociRuntime, '--init', '--network', 'none', '--pull', 'never', '--restart', 'no'];
    for (const u of this.opts.ulimits) args.push('--ulimit', u);
    for (const [k, v] of Object.entries(w.labels)) args.push('--label', `${k}=${v}`);
    if (s.memory !== undefined) args.push('--memory', `${s.memory}m`);
    if (s.vcpus !== undefined) args.push('--cpus', String(s.vcpus));
    for (const [k, v] of Object.entries(s.env)) args.push('--env', `${k}=${v}`);
    for (const v of s.volumes) args.push('--volume', `${v.source}:${v.target}${v.read_only ? ':ro' : ''}`);
    if (s.image === undefined) throw new RuntimeError('podman', 'run', w.name, 'container component has no image');
    args.push(s.image, ...s.cmd);
    return args;
  }

  async start(w: WorkloadSpec): Promise<Observed> {
    const quick = await this.startAsSeen(w);
    if (quick) return quick;
    const existing = await this.find(w.name);
    if (existing) {
      if (existing.specHash === w.specHash && existing.state === 'running') return existing;
      if (existing.specHash === w.specHash && (existing.state === 'exited' || existing.state === 'created')) {
        await this.startContainer(w.name, w.name);
        return (await this.find(w.name)) ?? existing;
      }
      await this.remove(w.name);
    }
    if ((await this.runContainer(w)) === undefined) {
      // Not ours (find() above sees only our label): never touch it.
      throw new RuntimeError('podman', 'run', w.name, `the name ${w.name} is taken by a container this agent does not manage`);
    }
    const started = await this.find(w.name);
    if (!started) throw new RuntimeError('podman', 'run', w.name, 'container vanished right after it was started');
    return started;
  }

  /**
   * The way to a restart or a first start without a look-up (a podman call, ~50-100 ms, saved),
   * when the agent's view says what is there: a stopped container of ours with this spec is
   * started again; no container by that name is run. When the view was stale, podman refuses
   * (no such container / name in use) and undefined sends the caller the careful way.
   */
  private async startAsSeen(w: WorkloadSpec): Promise<Observed | undefined> {
    const seen = w.seen;
    if (seen === undefined) return undefined;
    const startedAt = new Date().toISOString();
    if (seen === null) {
      const id = await this.runContainer(w);
      if (id === undefined) return undefined;
      return this.seenNow({ runtime: 'container', name: w.name, id, key: w.key, specHash: w.specHash, state: 'running', exitCode: undefined, startedAt, address: undefined });
    }
    if (seen.specHash !== w.specHash || (seen.state !== 'exited' && seen.state !== 'created')) return undefined;
    try {
      // By id: a container of that name made since the view was taken is never the one started.
      await this.startContainer(seen.id, w.name);
    } catch (err) {
      if (err instanceof RuntimeError && /no such container/i.test(err.message)) return undefined;
      throw err;
    }
    return this.seenNow({ ...seen, state: 'running', exitCode: undefined, exitReason: undefined, startedAt });
  }

  /**
   * `podman run`; resolves with the new container's id, or undefined when the name is already in
   * use. A container of ours that failed after creation does not stay behind half-started.
   */
  private async runContainer(w: WorkloadSpec): Promise<string | undefined> {
    try {
      const out = await this.podman(this.runArgs(w), 'run', w.name);
      return out.trim().split('\n').pop() ?? '';
    } catch (err) {
      if (err instanceof RuntimeError && /already in use/.test(err.message)) return undefined;
      if (await this.find(w.name).catch(() => undefined)) await this.remove(w.name).catch(() => undefined);
      throw err;
    }
  }

  async stop(name: string, graceSeconds: number): Promise<string> {
    const grace = Math.max(0, Math.round(graceSeconds));
    // podman itself waits the grace period before it kills: the bound is that plus a change's.
    await this.podman(['stop', '--ignore', '--time', String(grace), name], 'stop', name, grace * 1000 + this.opts.changeTimeoutMs);
    return 'stopped';
  }

  async remove(name: string): Promise<void> {
    await this.podman(['rm', '--force', '--ignore', '--time', '0', name], 'rm', name);
  }

  /** Watches the containers; while it does, the API service (podman.api = auto) runs or is found. */
  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    // MCP_AGENT_ID: whose helper this is, for anyone cleaning up after a killed agent.
    const env = { ...this.opts.env, MCP_AGENT_ID: this.opts.agentId };
    const socket = this.opts.apiSocketExternal ?? this.opts.apiSocket;
    const service = this.opts.api === 'auto' && socket && !this.service
      ? new PodmanService({ binary: this.opts.binary, env, socketPath: socket, external: this.opts.apiSocketExternal !== undefined, readyTimeoutMs: this.opts.changeTimeoutMs, log: this.opts.log })
      : undefined;
    this.service = service;
    service?.start();
    const stopWatch = watchContainers({
      binary: this.opts.binary,
      env,
      filter: `label=${LABEL_AGENT}=${this.opts.agentId}`,
      exitDir: this.opts.exitDir ?? DEFAULT_EXIT_DIR,
      byId: (id) => this.byId.get(id),
      seenNow: (o) => this.seenNow(o),
      onEvent,
    });
    return async () => {
      if (service && this.service === service) this.service = undefined;
      await Promise.all([stopWatch(), service?.stop()]);
    };
  }

  /**
   * `podman exec` (with -i and our stdin piped when there is one). The container is looked up
   * first, so "not ours / not there / not running" is told in words (ExecError, exit 125) rather
   * than as podman's bare 125; a container that stops between the look-up and the exec still
   * gets podman's own 125 and its "Error:" line on stderr.
   */
  async exec(name: string, argv: string[], io: ExecIo): Promise<number> {
    let seen: Observed | undefined;
    try {
      seen = await this.find(name);
    } catch (err) {
      throw new ExecError(name, (err as Error).message, { cause: err });
    }
    if (!seen) throw new ExecError(name, 'no such container of this agent on podman (not started yet, or removed)');
    if (seen.state !== 'running') throw new ExecError(name, `the container is not running (state ${seen.state})`);
    const p = execa(this.opts.binary, ['exec', ...(io.stdin ? ['-i'] : []), name, ...argv], {
      env: this.opts.env, stdin: io.stdin ? 'pipe' : 'ignore', reject: false, buffer: false,
    });
    p.stdout?.on('data', io.stdout);
    p.stderr?.on('data', io.stderr);
    if (io.stdin && p.stdin) {
      // podman ends: stop feeding it (a write after its end would be EPIPE on a stream nobody reads).
      p.stdin.on('error', () => undefined);
      io.stdin.pipe(p.stdin);
    }
    const r = await p;
    if (io.stdin && p.stdin) io.stdin.unpipe(p.stdin);
    if ((r as { code?: string }).code === 'ENOENT') throw new ExecError(name, 'podman is not installed (or not at the configured path)');
    return r.exitCode ?? 255;
  }

  async *logs(name: string, opts: LogsOptions): AsyncIterable<string> {
    const args = ['logs', ...(opts.follow ? ['--follow'] : [])];
    if (opts.tail !== undefined) args.push('--tail', String(opts.tail));
    if (opts.since !== undefined) args.push('--since', new Date(opts.since).toISOString());
    const p = execa(this.opts.binary, [...args, name], {
      env: this.opts.env, stdin: 'ignore', reject: false, buffer: false, all: true, cancelSignal: opts.signal,
    });
    for await (const chunk of p.all!) yield String(chunk);
    const r = await p;
    if (r.exitCode !== 0 && !opts.signal?.aborted) throw new RuntimeError('podman', 'logs', name, podmanMessage(r));
  }
}
