/**
 * Agent settings: built-in defaults < config file < environment < command-line flags.
 * The file (TOML, YAML or JSON) is validated with zod; unknown keys are errors, so a typo never
 * silently falls back to a default.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { formatOf, issuesOf, parseText } from '../manifest/load.js';
import { authFileIssues, BUCKET_NAME, BUCKET_RULE, DEFAULT_BUCKET, defaultNodeName, NATS_URL, NATS_URL_RULE, NODE_NAME, NODE_NAME_RULE } from '../nats/keys.js';
import { gatewayOf, parseSubnet } from '../net/plan.js';
import { SCOPE_SETTINGS } from '../runtime/qemu/scope.js';
import type { BridgeSettings } from '../net/types.js';
import { LOG_LEVELS } from './levels.js';

export { LOG_LEVELS };

export const DEFAULT_CONFIG_PATH = '/etc/mcp-agent/agent.toml';

/**
 * cron (and its luxon) is loaded only to check a schedule someone wrote: a default is not checked,
 * and loading it cost a CLI call ~10 ms (of ~70) while most calls never read a schedule.
 */
const validCron = (s: string): boolean => (createRequire(import.meta.url)('cron') as typeof import('cron')).validateCronExpression(s).valid;
const cron = z.string().refine(validCron, { message: 'must be a cron expression (6 fields with seconds, or 5 without)' });

const LISTEN_RULE = 'must be IP:PORT (e.g. 127.0.0.1:9469, [::1]:9469; port 0-65535, 0 picks a free one), or "" to turn it off';

/** `127.0.0.1:9469` or `[::1]:9469` to host and port; undefined when it is neither. Only IP literals: no name to resolve. */
export function parseListen(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (isIP(host) !== (m[1] ? 6 : 4) || port > 65_535) return undefined;
  return { host, port };
}

/**
 * Sections are built on first use (z.lazy): a section left to its default is never parsed, and
 * building every zod schema up front cost each CLI call several milliseconds.
 */
export const ConfigSchema = z.strictObject({
  /** Registry file; relative paths are relative to the config file (or the working directory). */
  db: z.string().min(1, 'must not be empty').default('./var/agent.db'),
  /** Full resync schedule, on top of registry changes and runtime events. */
  resync: cron.default('*/30 * * * * *'),
  /** How often the registry is checked for commits by another connection (PRAGMA data_version). */
  registry_poll_ms: z.number().int().min(20, 'must be at least 20').max(1000, 'must be at most 1000 (a master\'s push is noticed within a second)').default(200),
  /** Actions applied at once across components. */
  parallelism: z.number().int().min(1, 'must be at least 1').max(64, 'must be at most 64').default(4),
  stop_grace_seconds: z.number().int().min(0, 'must be at least 0').max(600, 'must be at most 600').default(10),
  /** A workload running this long in sync has its failure count (and backoff) reset. */
  stable_after_seconds: z.number().int().min(0).max(86_400).default(30),
  backoff: z
    .lazy(() => z.strictObject({
      base_ms: z.number().int().min(10, 'must be at least 10').max(3_600_000).default(1000),
      max_ms: z.number().int().min(10, 'must be at least 10').max(86_400_000).default(300_000),
    }))
    .default({ base_ms: 1000, max_ms: 300_000 }),
  log_level: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  /**
   * Where `agent run` serves Prometheus metrics over TCP (GET /metrics). Loopback by default: an
   * operator who wants a scraper elsewhere to reach it writes the address to bind. "" turns it off.
   */
  metrics_listen: z.string().refine((s) => s === '' || parseListen(s) !== undefined, { message: LISTEN_RULE }).default('127.0.0.1:9469'),
  /** Health probes (a component's `health` table): how many run at once across workloads. */
  health: z
    .strictObject({ parallelism: z.number().int().min(1, 'must be at least 1').max(256, 'must be at most 256').default(8) })
    .default({ parallelism: 8 }),
  net: z.lazy(() => netSchema()).default({ bridge: 'mcp-br0', subnet: '10.99.0.0/24', table: 'mcp' }),
  /** Where desired state comes from besides `agent apply`: a NATS JetStream KV bucket (off when absent). */
  source: z.lazy(() => sourceSchema()).default({}),
  podman: z
    .lazy(() => z.strictObject({
      binary: z.string().min(1).default('podman'),
      /** crun fails on these machines (cgroups hybrid mode); runc works. */
      oci_runtime: z.string().regex(/^[a-z0-9._-]+$/, 'must be an OCI runtime name').default('runc'),
      /** root lacks CAP_SYS_RESOURCE here: the default ulimits are too high for it. */
      ulimits: z.array(z.string().regex(/^[a-z]+=-?\d+(:-?\d+)?$/, 'must look like nofile=20000:20000')).default(['nofile=20000:20000', 'nproc=32768:32768']),
      /** Optional CONTAINERS_CONF for podman. */
      containers_conf: z.string().optional(),
      /** A `podman ps` (or version) that has not answered by then is killed: containers are `unknown`. */
      list_timeout_seconds: z.number().int().min(1, 'must be at least 1').max(600, 'must be at most 600').default(10),
      /** Bound of `podman run`, `start`, `rm`; `stop` gets stop_grace_seconds on top. */
      timeout_seconds: z.number().int().min(1, 'must be at least 1').max(3600, 'must be at most 3600').default(60),
      /**
       * auto: `agent run` lists, inspects and restarts containers through podman's REST API (its own
       * `podman system service`, or api_socket), the CLI whenever that does not answer; off: the CLI only.
       */
      api: z.enum(['auto', 'off'], { error: 'must be auto or off' }).default('auto'),
      /** An existing podman API socket to use instead of starting a service (absolute, ≤ 107 bytes). */
      api_socket: z
        .string()
        .refine((s) => s.startsWith('/'), { message: 'must be an absolute path' })
        .refine((s) => Buffer.byteLength(s) <= 107, { message: 'must be at most 107 bytes (a unix socket path)' })
        .optional(),
    }))
    .default({ binary: 'podman', oci_runtime: 'runc', ulimits: ['nofile=20000:20000', 'nproc=32768:32768'], list_timeout_seconds: 10, timeout_seconds: 60, api: 'auto' }),
  qemu: z
    .lazy(() => z.strictObject({
      binary: z.string().min(1).default('qemu-system-x86_64'),
      img_binary: z.string().min(1).default('qemu-img'),
      /** auto: KVM only where it really works (/dev/kvm opens read-write and the CPU has vmx/svm). */
      accel: z.enum(['auto', 'kvm', 'tcg'], { error: 'must be auto, kvm or tcg' }).default('auto'),
      /** A VM counts as running only once its SSH answers; after this long it has failed to boot. */
      boot_timeout_seconds: z.number().int().min(5, 'must be at least 5').max(3600, 'must be at most 3600').default(90),
      /** Where VM boot files may come from; the first is where relative paths point. Default: <home>/images. */
      images_dirs: z.array(z.string().min(1)).min(1, 'must name at least one directory').optional(),
      /** VM state dirs. Default: <home>/vm. */
      vm_dir: z.string().min(1).optional(),
      ssh_user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'must be a user name').default('root'),
      /** The agent's private key for the guests. Default: <first images dir>/id_ed25519. */
      ssh_key: z.string().min(1).optional(),
      /** Kernel command line of every kernel boot, before the component's cmdline. */
      /** panic=-1: a guest whose init dies reboots at once, and -no-reboot turns that into an exit. */
      base_cmdline: z.string().max(1024).default('console=ttyS0 quiet panic=-1'),
      /** Host memory a VM holds besides its guest's (measured ~65 MiB under TCG: docs/admission.md). */
      overhead_mib: z.number().int('must be a whole number of MiB').min(0, 'must be at least 0').max(4096, 'must be at most 4096').default(64),
      /**
       * Each QEMU in its own systemd scope (mcp-vm-<workload>.scope in machine.slice, bounded by
       * MemoryMax/CPUQuota): auto = when systemd is PID 1, systemd-run is there and the agent is
       * root; on = always (`agent run` refuses to start where systemd is not running); off = never.
       */
      systemd_scope: z.enum(SCOPE_SETTINGS, { error: 'must be auto, on or off' }).default('auto'),
    }))
    .default({ binary: 'qemu-system-x86_64', img_binary: 'qemu-img', accel: 'auto', boot_timeout_seconds: 90, ssh_user: 'root', base_cmdline: 'console=ttyS0 quiet panic=-1', overhead_mib: 64, systemd_scope: 'auto' }),
  host: z.lazy(() => hostSchema()).default({ reserved_memory_mib: 512, cpu_overcommit: 4, default_container_memory_mib: 0 }),
});
export type AgentConfig = z.output<typeof ConfigSchema>;

const netSchema = () =>
  z.strictObject({
    /** The host-only bridge; VMs with network auto use it when it exists. */
    bridge: z
      .string()
      .regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$/, 'must be an interface name: 1-15 of A-Z a-z 0-9 _ . -, not starting with a dot').default('mcp-br0'),
    /** The bridge's subnet: the gateway (the host) is its first address, VMs get the rest. */
    subnet: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d{1,2}$/, 'must be an IPv4 CIDR like 10.99.0.0/24').default('10.99.0.0/24'),
    /** The nftables table (inet and bridge families) the agent owns. */
    table: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'must be an nft table name').default('mcp'),
  });

/** What admission (src/agent/admission.ts) counts the host as holding. */
const hostSchema = () =>
  z.strictObject({
    /** Kept for the host itself (kernel, agent, podman): capacity is MemTotal minus this. */
    reserved_memory_mib: z.number().int('must be a whole number of MiB').min(0, 'must be at least 0').max(1_048_576, 'must be at most 1048576 (1 TiB)').default(512),
    /** vCPUs admitted per online CPU. */
    cpu_overcommit: z.number().int('must be a whole number').min(1, 'must be at least 1').max(64, 'must be at most 64').default(4),
    /** What a container without `memory` counts (0: not counted). */
    default_container_memory_mib: z.number().int('must be a whole number of MiB').min(0, 'must be at least 0').max(1_048_576, 'must be at most 1048576 (1 TiB)').default(0),
  });

const natsSettingsSchema = () => {
  const filePath = z.string().min(1, 'must not be empty');
  return z.strictObject({
    /** Servers to connect to (any of them; the client fails over and reconnects forever). */
    urls: z
      .array(z.string().regex(NATS_URL, NATS_URL_RULE))
      .min(1, 'must name at least one server'),
    bucket: z.string().regex(BUCKET_NAME, BUCKET_RULE).default(DEFAULT_BUCKET),
    /** This node's name in the keys (desired.<node>.<service>, status.<node>); default: the host name up to its first dot. */
    node: z.string().regex(NODE_NAME, NODE_NAME_RULE).optional(),
    /** A NATS credentials file (JWT and NKey seed). */
    creds: filePath.optional(),
    tls: z.strictObject({ ca: filePath.optional(), cert: filePath.optional(), key: filePath.optional() }).optional(),
  });
};
export type NatsSettings = z.output<ReturnType<typeof natsSettingsSchema>> & { node: string };

const sourceSchema = () => z.strictObject({ nats: natsSettingsSchema().optional() });

/** The NATS settings with the node name filled in, or undefined when the source is off. */
export function natsSettings(cfg: AgentConfig): NatsSettings | undefined {
  const n = cfg.source.nats;
  return n ? { ...n, node: n.node ?? defaultNodeName() } : undefined;
}

/**
 * The NATS files that cannot be read (checked when `agent run` starts, not at every command: a
 * `status` need not read the agent's credentials), and a cert without its key.
 */
export function natsFileIssues(n: NatsSettings): Array<{ field: string; rule: string }> {
  return authFileIssues({
    creds: { field: 'source.nats.creds', path: n.creds },
    ca: { field: 'source.nats.tls.ca', path: n.tls?.ca },
    cert: { field: 'source.nats.tls.cert', path: n.tls?.cert },
    key: { field: 'source.nats.tls.key', path: n.tls?.key },
    pair: { field: 'source.nats.tls', rule: 'cert and key go together: set both or neither' },
  });
}

/** The agent's home is the registry's directory: images/ and vm/ live there unless configured. */
export interface VmPaths {
  home: string;
  imagesDirs: string[];
  vmDir: string;
  sshKey: string;
}

export function vmPaths(cfg: AgentConfig): VmPaths {
  const home = dirname(cfg.db);
  const imagesDirs = (cfg.qemu.images_dirs ?? ['images']).map((d) => resolve(home, d));
  return {
    home,
    imagesDirs,
    vmDir: resolve(home, cfg.qemu.vm_dir ?? 'vm'),
    sshKey: resolve(imagesDirs[0]!, cfg.qemu.ssh_key ?? 'id_ed25519'),
  };
}

export interface ConfigSources {
  /** --config, or $AGENT_CONFIG; else DEFAULT_CONFIG_PATH when it exists. */
  configPath?: string | undefined;
  env: NodeJS.ProcessEnv;
  flags: { db?: string | undefined; logLevel?: string | undefined };
  cwd: string;
}

export function loadConfig(src: ConfigSources): AgentConfig & { configFile: string | undefined } {
  const explicit = src.configPath ?? src.env.AGENT_CONFIG;
  const file = explicit ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  let raw: Record<string, unknown> = {};
  let baseDir = src.cwd;
  if (file) {
    const format = formatOf(file);
    if (!format) throw new ValidationError(`config ${file}`, [{ field: '(file)', rule: 'must end in .toml, .yaml, .yml or .json' }]);
    let text: string;
    try {
      text = readFileSync(resolve(src.cwd, file), 'utf8');
    } catch (err) {
      throw new ValidationError(`config ${file}`, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]);
    }
    const doc = parseText(text, format, `config ${file}`);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ValidationError(`config ${file}`, [{ field: '(document)', rule: 'must be a table of settings' }]);
    }
    raw = doc as Record<string, unknown>;
    baseDir = dirname(resolve(src.cwd, file));
  }
  // Environment, then flags, override the file. Paths given there are relative to the cwd.
  const overrides: Record<string, unknown> = {};
  let dbFromOverride = false;
  if (src.env.AGENT_DB) (overrides.db = src.env.AGENT_DB), (dbFromOverride = true);
  if (src.env.AGENT_LOG_LEVEL) overrides.log_level = src.env.AGENT_LOG_LEVEL;
  if (src.env.AGENT_RESYNC) overrides.resync = src.env.AGENT_RESYNC;
  // "" is a value here (the listener off), not an unset variable.
  if (src.env.AGENT_METRICS_LISTEN !== undefined) overrides.metrics_listen = src.env.AGENT_METRICS_LISTEN;
  if (src.flags.db) (overrides.db = src.flags.db), (dbFromOverride = true);
  if (src.flags.logLevel) overrides.log_level = src.flags.logLevel;
  const merged: Record<string, unknown> = { ...raw, ...overrides };
  if (src.env.AGENT_PODMAN) merged.podman = { ...((raw.podman as object | undefined) ?? {}), binary: src.env.AGENT_PODMAN };
  if (src.env.AGENT_QEMU || src.env.AGENT_ACCEL) {
    merged.qemu = {
      ...((raw.qemu as object | undefined) ?? {}),
      ...(src.env.AGENT_QEMU ? { binary: src.env.AGENT_QEMU } : {}),
      ...(src.env.AGENT_ACCEL ? { accel: src.env.AGENT_ACCEL } : {}),
    };
  }

  const source = file ? `config ${file} (with environment and flags)` : 'settings from environment and flags';
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) throw new ValidationError(source, issuesOf(parsed.error, [], ConfigSchema));
  const cfg = parsed.data;
  // Rules across fields, or beyond a regex: checked together so one run reports them all.
  const semantic: { field: string; rule: string }[] = [];
  if (cfg.backoff.max_ms < cfg.backoff.base_ms) semantic.push({ field: 'backoff.max_ms', rule: 'must be at least backoff.base_ms' });
  try {
    parseSubnet(cfg.net.subnet);
  } catch (err) {
    semantic.push({ field: 'net.subnet', rule: (err as Error).message });
  }
  if (semantic.length > 0) throw new ValidationError(source, semantic);
  const dbBase = dbFromOverride ? src.cwd : baseDir;
  return { ...cfg, db: isAbsolute(cfg.db) ? cfg.db : resolve(dbBase, cfg.db), configFile: file };
}

export function bridgeSettings(cfg: AgentConfig): BridgeSettings {
  const subnet = parseSubnet(cfg.net.subnet);
  return { bridge: cfg.net.bridge, gateway: gatewayOf(subnet), prefix: subnet.prefix, table: cfg.net.table };
}
