/**
 * Containers under podman, through execa with argument arrays (never a shell).
 * Quirks of this tool on these machines (see HOST-FACTS): crun fails here, so `--runtime runc`;
 * root lacks CAP_SYS_RESOURCE, so lower ulimits; `--init` so `podman stop` does not wait for a
 * PID 1 that ignores SIGTERM; `--network none` so nothing touches the main network namespace;
 * `--pull never` because no image registry is reachable and a pull would only hang.
 */
import { execa, type ExecaError } from 'execa';
import { z } from 'zod';
import { RuntimeError } from '../errors.js';
import { runBounded } from './command.js';
import { LABEL_AGENT, LABEL_COMPONENT, LABEL_SPEC_HASH, parseComponentLabel } from '../identity.js';
import { DEFAULT_EXIT_DIR } from './podman-exits.js';
import { watchContainers } from './podman-watch.js';
import type { Capabilities, ExecIo, Observed, Runtime, RuntimeEvent, WorkloadSpec, WorkloadState } from './types.js';

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
}

const PsEntrySchema = z.object({
  Id: z.string(),
  Names: z.array(z.string()).default([]),
  State: z.string(),
  Labels: z.record(z.string(), z.string()).nullish(),
  ExitCode: z.number().optional(),
  StartedAt: z.number().optional(),
  Exited: z.boolean().optional(),
});
const PsOutputSchema = z.array(PsEntrySchema);

function stateOf(podmanState: string): WorkloadState {
  switch (podmanState) {
    case 'running':
      return 'running';
    case 'exited':
    case 'stopped':
    case 'dead':
      return 'exited';
    case 'created':
    case 'configured':
    case 'initialized':
      return 'created';
    case 'paused':
      return 'paused';
    case 'stopping':
      return 'stopping';
    default:
      return 'unknown';
  }
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
      return String(r.stdout);
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

  /** `podman ps -a` of this agent's containers, with extra filters (ANDed by podman). */
  private async ps(filters: string[], operation = 'list'): Promise<Observed[]> {
    const args = ['ps', '-a', '--format', 'json', '--filter', `label=${LABEL_AGENT}=${this.opts.agentId}`];
    for (const f of filters) args.push('--filter', f);
    const out = await this.podman(args, operation, undefined, this.opts.listTimeoutMs);
    let raw: unknown;
    try {
      raw = JSON.parse(out || '[]');
    } catch {
      throw new RuntimeError('podman', operation, undefined, 'podman ps printed something that is not JSON');
    }
    const parsed = PsOutputSchema.safeParse(raw);
    if (!parsed.success) throw new RuntimeError('podman', operation, undefined, `unexpected podman ps output: ${parsed.error.message}`);
    return parsed.data.map((c) => this.seenNow(this.toObserved(c)));
  }

  private toObserved(c: z.infer<typeof PsEntrySchema>): Observed {
    const labels = c.Labels ?? {};
    return {
      runtime: 'container',
      name: c.Names[0] ?? c.Id.slice(0, 12),
      id: c.Id,
      key: parseComponentLabel(labels[LABEL_COMPONENT]),
      specHash: labels[LABEL_SPEC_HASH],
      state: stateOf(c.State),
      exitCode: c.ExitCode,
      startedAt: c.StartedAt && c.StartedAt > 0 ? new Date(c.StartedAt * 1000).toISOString() : undefined,
      address: undefined,
    };
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
        await this.podman(['start', w.name], 'start', w.name);
        return (await this.find(w.name)) ?? existing;
      }
      await this.remove(w.name);
    }
    try {
      await this.podman(this.runArgs(w), 'run', w.name);
    } catch (err) {
      if (err instanceof RuntimeError && /already in use/.test(err.message)) {
        // Not ours (find() above sees only our label): never touch it.
        throw new RuntimeError('podman', 'run', w.name, `the name ${w.name} is taken by a container this agent does not manage`);
      }
      // A container of ours that failed after creation must not stay behind half-started.
      if (await this.find(w.name).catch(() => undefined)) await this.remove(w.name).catch(() => undefined);
      throw err;
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
      try {
        const out = await this.podman(this.runArgs(w), 'run', w.name);
        const id = out.trim().split('\n').pop() ?? '';
        return this.seenNow({ runtime: 'container', name: w.name, id, key: w.key, specHash: w.specHash, state: 'running', exitCode: undefined, startedAt, address: undefined });
      } catch (err) {
        if (err instanceof RuntimeError && /already in use/.test(err.message)) return undefined;
        if (await this.find(w.name).catch(() => undefined)) await this.remove(w.name).catch(() => undefined);
        throw err;
      }
    }
    if (seen.specHash !== w.specHash || (seen.state !== 'exited' && seen.state !== 'created')) return undefined;
    try {
      // By id: a container of that name made since the view was taken is never the one started.
      await this.podman(['start', seen.id], 'start', w.name);
    } catch (err) {
      if (err instanceof RuntimeError && /no such container/i.test(err.message)) return undefined;
      throw err;
    }
    return this.seenNow({ ...seen, state: 'running', exitCode: undefined, exitReason: undefined, startedAt });
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

  watch(onEvent: (e: RuntimeEvent) => void): () => void {
    return watchContainers({
      binary: this.opts.binary,
      // MCP_AGENT_ID: whose stream this is, for anyone cleaning up after a killed agent.
      env: { ...this.opts.env, MCP_AGENT_ID: this.opts.agentId },
      filter: `label=${LABEL_AGENT}=${this.opts.agentId}`,
      exitDir: this.opts.exitDir ?? DEFAULT_EXIT_DIR,
      byId: (id) => this.byId.get(id),
      seenNow: (o) => this.seenNow(o),
      onEvent,
    });
  }

  async exec(name: string, argv: string[], io: ExecIo): Promise<number> {
    const p = execa(this.opts.binary, ['exec', name, ...argv], { env: this.opts.env, stdin: 'ignore', reject: false, buffer: false });
    p.stdout?.on('data', io.stdout);
    p.stderr?.on('data', io.stderr);
    const r = await p;
    if ((r as { code?: string }).code === 'ENOENT') throw new RuntimeError('podman', 'exec', name, 'podman is not installed (or not at the configured path)');
    return r.exitCode ?? 255;
  }

  async *logs(name: string, opts: { follow: boolean; signal?: AbortSignal }): AsyncIterable<string> {
    const p = execa(this.opts.binary, ['logs', ...(opts.follow ? ['--follow'] : []), name], {
      env: this.opts.env, stdin: 'ignore', reject: false, buffer: false, all: true, cancelSignal: opts.signal,
    });
    for await (const chunk of p.all!) yield String(chunk);
    const r = await p;
    if (r.exitCode !== 0 && !opts.signal?.aborted) throw new RuntimeError('podman', 'logs', name, podmanMessage(r));
  }
}
