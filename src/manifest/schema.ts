/**
 * The desired-state model at the edge: zod schemas for service manifests (what `agent apply`
 * takes) and for the normalised component spec (what the registry stores and the planner uses).
 * Every rule here is phrased so that an error message names the rule.
 */
import { z } from 'zod';
import { HealthSchema, healthComponentIssues } from './health-schema.js';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;
export const NAME_MAX = 30;

export const RUNTIMES = ['container', 'unikernel'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

export const RESTART_POLICIES = ['always', 'on-failure', 'never'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

export const NETWORK_MODES = ['none', 'auto', 'bridge', 'slirp'] as const;

/** Limits: generous for a real node, but they catch typos like 512000 vcpus or -1 memory. */
export const MEMORY_MIB = { min: 16, max: 1024 * 1024 } as const;
export const VCPUS = { min: 1, max: 256 } as const;

/** QEMU's -m below this resets silently under -no-reboot (HOST-FACTS): refuse it up front. */
export const UNIKERNEL_MEMORY_MIN = 80;

const envKey = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The schemas, built on first use (`manifestSchemas()`): building them costs a CLI call several
 * milliseconds, and most calls (status, events, logs) never parse a manifest or a registry row.
 */
function buildSchemas() {
  const name = z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(NAME_MAX, `must be at most ${NAME_MAX} characters`)
    .regex(NAME_PATTERN, `must match ${NAME_PATTERN.source} (lowercase letters, digits and '-', not starting with '-')`)
    .refine((s) => !s.endsWith('-') && !s.includes('--'), { message: "must not end with '-' or contain '--'" });

  /** Container image references: no whitespace, no leading '-' (it would read as a podman flag). */
  const imageRef = z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(512, 'must be at most 512 characters')
    .regex(/^[A-Za-z0-9][A-Za-z0-9._\/:@+-]*$/, 'must be an image reference (letters, digits and ._/:@+-, not starting with a symbol)');

  const absolutePath = z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(4096, 'must be at most 4096 characters')
    .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })
    .refine((p) => !p.split('/').includes('..'), { message: "must not contain '..'" })
    .refine((p) => !/[:,\0]/.test(p), { message: "must not contain ':', ',' or NUL" });

  const port = z
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 65535')
    .max(65535, 'must be between 1 and 65535');

  const PortSchema = z.strictObject({
    guest: port,
    host: port.optional(),
    protocol: z.enum(['tcp', 'udp'], { error: "must be 'tcp' or 'udp'" }).default('tcp'),
  });

  const VolumeSchema = z.strictObject({
    source: absolutePath,
    target: absolutePath,
    read_only: z.boolean({ error: 'must be true or false' }).default(false),
  });



  /**
   * A VM boot file: a path relative to the images directory (`guest.img`, `v1/vmlinux`) or an
   * absolute path; whether an absolute path is inside an allowed directory is checked against the
   * node's settings (see images.ts), since this schema cannot know them.
   */
  const bootPath = z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(4096, 'must be at most 4096 characters')
    .refine((p) => !p.split('/').includes('..'), { message: "must not contain '..'" })
    .refine((p) => !/[,\0\n]/.test(p), { message: "must not contain ',', NUL or a newline (QEMU option syntax)" });

  const sha256 = z.string({ error: 'must be a string' }).regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)');

  const sshHostKey = z
    .string({ error: 'must be a string' })
    .max(16384, 'must be at most 16384 characters')
    .refine((s) => /^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$/.test(s) || /^[A-Za-z0-9._/-]+\.pub$/.test(s), {
      message: "must be a public key line ('ssh-ed25519 AAAA...') or a .pub file in the images directory",
    });


  const componentFields = {
    name,
    /**
     * Container image reference, or for unikernels the bootable disk image (a bootPath). The
     * runtime-specific rule is applied once the runtime is known; this one holds for both.
     */
    image: z
      .string({ error: 'must be a string' })
      .min(1, 'must not be empty')
      .max(4096, 'must be at most 4096 characters')
      .regex(/^[A-Za-z0-9/.][^\s\0]*$/, 'must be an image reference or a path (no leading symbol other than / or ., no whitespace)')
      .optional(),
    kernel: bootPath.optional(),
    initrd: bootPath.optional(),
    cmdline: z.string({ error: 'must be a string' }).max(2048, 'must be at most 2048 characters').refine((s) => !/[\0\n]/.test(s), 'must not contain NUL or a newline').optional(),
    image_sha256: sha256.optional(),
    ssh_host_key: sshHostKey.optional(),
    cmd: z.array(z.string({ error: 'must be a string' }).refine((s) => !s.includes('\0'), 'must not contain NUL'), { error: 'must be an array of strings' }).max(256, 'must have at most 256 arguments').default([]),
    env: z
      .record(
        z.string().regex(envKey, `keys must match ${envKey.source}`),
        z.string({ error: 'values must be strings' }).refine((s) => !s.includes('\0'), 'values must not contain NUL'),
        { error: 'must be a table of strings' },
      )
      .default({}),
    memory: z
      .number({ error: 'must be a number of MiB' })
      .int('must be a whole number of MiB')
      .min(MEMORY_MIB.min, `must be at least ${MEMORY_MIB.min} MiB`)
      .max(MEMORY_MIB.max, `must be at most ${MEMORY_MIB.max} MiB`)
      .optional(),
    vcpus: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(VCPUS.min, `must be at least ${VCPUS.min}`)
      .max(VCPUS.max, `must be at most ${VCPUS.max}`)
      .optional(),
    network: z.enum(NETWORK_MODES, { error: `must be one of ${NETWORK_MODES.join(', ')}` }).optional(),
    ports: z.array(PortSchema, { error: 'must be an array' }).max(64, 'must have at most 64 entries').default([]),
    volumes: z.array(VolumeSchema, { error: 'must be an array' }).max(64, 'must have at most 64 entries').default([]),
    restart: z.enum(RESTART_POLICIES, { error: `must be one of ${RESTART_POLICIES.join(', ')}` }).default('always'),
    /** How the agent probes the running workload (health-schema.ts); none: running is healthy. */
    health: HealthSchema().optional(),
  };

  const runtime = z.enum(RUNTIMES, { error: `must be one of ${RUNTIMES.join(', ')}` });

  const ComponentManifestSchema = z.strictObject({ ...componentFields, runtime: runtime.optional() });

  const ServiceManifestSchema = z.strictObject({
    name,
    active: z.boolean({ error: 'must be true or false' }).default(true),
    comment: z.string({ error: 'must be a string' }).max(1000, 'must be at most 1000 characters').default(''),
    runtime: runtime.optional(),
    components: z.array(ComponentManifestSchema, { error: 'must be an array of components' }).min(1, 'must have at least one component').max(100, 'must have at most 100 components'),
  });

  /**
   * A component as the registry stores it and the planner compares it: runtime resolved,
   * defaults filled in. The registry parses every row it reads with this schema, because a master
   * may write the registry directly with any SQLite client.
   */
  const ComponentSpecSchema = z
    .strictObject({ ...componentFields, service: name, runtime, network: z.enum(NETWORK_MODES, { error: `must be one of ${NETWORK_MODES.join(', ')}` }) })
    .superRefine((c, ctx) => {
      const issue = (path: string, message: string): void => ctx.addIssue({ code: 'custom', path: [path], message });
      for (const [path, message] of healthComponentIssues(c)) ctx.addIssue({ code: 'custom', path, message });
      if (c.runtime === 'container') {
        if (c.image === undefined) issue('image', 'is required for container components');
        else {
          const r = imageRef.safeParse(c.image);
          if (!r.success) issue('image', r.error.issues[0]?.message ?? 'is not an image reference');
        }
        for (const f of ['kernel', 'initrd', 'cmdline', 'image_sha256', 'ssh_host_key'] as const) {
          if (c[f] !== undefined) issue(f, 'is only for unikernel components');
        }
        if (c.network !== 'none') ctx.addIssue({ code: 'custom', path: ['network'], message: "containers support only 'none' (they run with --network none)" });
        if (c.ports.length > 0) ctx.addIssue({ code: 'custom', path: ['ports'], message: 'containers run with --network none: ports cannot be published' });
      } else {
        if (c.memory === undefined) issue('memory', 'is required for unikernel components (MiB)');
        else if (c.memory < UNIKERNEL_MEMORY_MIN) issue('memory', `must be at least ${UNIKERNEL_MEMORY_MIN} MiB for a unikernel (below that QEMU guests reset silently)`);
        if (c.volumes.length > 0) issue('volumes', 'are not supported for unikernel components');
        if (c.network === 'none') issue('network', 'must be auto, slirp or bridge for unikernel components');
        if (c.image !== undefined) {
          const r = bootPath.safeParse(c.image);
          if (!r.success) issue('image', r.error.issues[0]?.message ?? 'is not a path');
        }
        if (c.image === undefined && c.kernel === undefined) issue('image', 'or kernel is required for unikernel components (a disk image, or kernel + initrd)');
        if (c.kernel !== undefined && c.initrd === undefined && c.image === undefined) issue('initrd', 'is required with kernel when no disk image is given (the guest has no root otherwise)');
        if (c.kernel === undefined && (c.initrd !== undefined || c.cmdline !== undefined)) issue(c.initrd !== undefined ? 'initrd' : 'cmdline', 'needs kernel');
        if (c.cmd.length > 0) issue('cmd', 'is not used by unikernel components (use cmdline for a kernel boot)');
        if (Object.keys(c.env).length > 0) issue('env', 'is not supported for unikernel components');
        const seen = new Set<number>();
        c.ports.forEach((p, i) => {
          if (p.protocol === 'tcp' && p.guest === 22) ctx.addIssue({ code: 'custom', path: ['ports', i, 'guest'], message: 'must not be 22: the agent forwards SSH itself' });
          if (p.host !== undefined) {
            if (seen.has(p.host)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'host'], message: `duplicates host port ${p.host}` });
            seen.add(p.host);
          }
        });
      }
    });
  return { PortSchema, VolumeSchema, ComponentManifestSchema, ServiceManifestSchema, ComponentSpecSchema };
}

type Schemas = ReturnType<typeof buildSchemas>;
let built: Schemas | undefined;
export const manifestSchemas = (): Schemas => (built ??= buildSchemas());

export type ServiceManifestInput = z.input<Schemas['ServiceManifestSchema']>;
export type ComponentSpec = z.output<Schemas['ComponentSpecSchema']>;

export interface ServiceSpec {
  name: string;
  active: boolean;
  comment: string;
  components: ComponentSpec[];
}
