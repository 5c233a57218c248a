/**
 * A component's `health` table: how the agent probes a running workload (tcp, http or exec) and
 * how many results in a row flip its verdict. Kept apart from schema.ts, which hooks it in
 * (componentFields and the cross-field rules of ComponentSpecSchema). The defaults are kubelet's
 * but for the interval (10 s) and timeout (2 s). Every rule names the field it is about.
 */
import { z } from 'zod';

export const HEALTH_KINDS = ['tcp', 'http', 'exec'] as const;
export type HealthKind = (typeof HEALTH_KINDS)[number];

const seconds = (min: number, max: number, what: string) =>
  z
    .number({ error: 'must be a number of seconds' })
    .min(min, `must be at least ${min} s${what}`)
    .max(max, `must be at most ${max} s`);

const count = (max: number) => z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(max, `must be at most ${max}`);

let built: ReturnType<typeof buildHealthSchema> | undefined;

/** Built on first use, as the manifest schemas are (schema.ts): commands that never read a manifest do not pay for it. */
export const HealthSchema = (): ReturnType<typeof buildHealthSchema> => (built ??= buildHealthSchema());

function buildHealthSchema() {
  const port = z
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 65535')
    .max(65535, 'must be between 1 and 65535');
  const status = z.number({ error: 'must be a number' }).int('must be an integer').min(100, 'must be an HTTP status (100-599)').max(599, 'must be an HTTP status (100-599)');
  return z
  .strictObject({
    kind: z.enum(HEALTH_KINDS, { error: `must be one of ${HEALTH_KINDS.join(', ')}` }),
    /** tcp and http: the port inside the container's network namespace, or the VM's guest port. */
    port: port.optional(),
    /** http: the path asked for with GET. */
    path: z
      .string({ error: 'must be a string' })
      .max(1024, 'must be at most 1024 characters')
      .regex(/^\/[\x21-\x7e]*$/, "must start with '/' and hold only printable characters without spaces")
      .optional(),
    /** http: the status range that counts as healthy, both ends included. */
    expected_status: z.tuple([status, status], { error: 'must be [low, high], e.g. [200, 399]' }).optional(),
    /** exec: argv run in the workload (podman exec; over the pinned SSH in a VM). Exit 0 is healthy. */
    command: z.array(z.string({ error: 'must be a string' }).refine((s) => !s.includes('\0'), 'must not contain NUL'), { error: 'must be an array of strings' }).max(64, 'must have at most 64 arguments').optional(),
    interval_seconds: seconds(1, 3600, ' (probes run on timers; less would load the node for little)').default(10),
    timeout_seconds: seconds(0.1, 600, '').default(2),
    failure_threshold: count(100).default(3),
    success_threshold: count(100).default(1),
    /** Failures during this long after the workload started do not count (a slow boot). */
    start_period_seconds: z.number({ error: 'must be a number of seconds' }).min(0, 'must be at least 0').max(86_400, 'must be at most 86400 s').default(0),
  })
  .superRefine((h, ctx) => {
    const issue = (path: string, message: string): void => ctx.addIssue({ code: 'custom', path: [path], message });
    const needs = (field: 'port' | 'command', kinds: string): void => issue(field, `is required for a ${h.kind} check (${kinds})`);
    if ((h.kind === 'tcp' || h.kind === 'http') && h.port === undefined) needs('port', 'the port probed');
    if (h.kind === 'exec' && (h.command === undefined || h.command.length === 0)) needs('command', 'a non-empty argv');
    if (h.kind !== 'exec' && h.command !== undefined) issue('command', 'is only for exec checks');
    if (h.kind === 'exec' && h.port !== undefined) issue('port', 'is not used by exec checks');
    if (h.kind !== 'http') for (const f of ['path', 'expected_status'] as const) if (h[f] !== undefined) issue(f, 'is only for http checks');
    if (h.expected_status && h.expected_status[0] > h.expected_status[1]) issue('expected_status', 'must be [low, high] with low <= high');
  });
}
export type HealthCheck = z.output<ReturnType<typeof buildHealthSchema>>;

/** The http defaults, applied where the check is run (so a stored check stays as written). */
export const HTTP_DEFAULTS = { path: '/', expected_status: [200, 399] as [number, number] };

/**
 * The rules that need the rest of the component: a VM's tcp/http port must be one it declares
 * (it is reached through that forward or at its bridge address). A container's network namespace
 * is entered, so any port of it can be probed. Issues are [path under the component, message].
 */
export function healthComponentIssues(c: { runtime: string; ports: Array<{ guest: number; protocol: string }>; health?: HealthCheck | undefined }): Array<[Array<string | number>, string]> {
  const h = c.health;
  if (!h || h.port === undefined || c.runtime !== 'unikernel') return [];
  if (c.ports.some((p) => p.guest === h.port && p.protocol === 'tcp')) return [];
  const declared = c.ports.filter((p) => p.protocol === 'tcp').map((p) => p.guest);
  return [[['health', 'port'], `must be one of the component's declared tcp ports (guest ${declared.length ? declared.join(', ') : 'none declared'}): a VM is probed through its forward or at its bridge address`]];
}
