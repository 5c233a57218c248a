/**
 * Typed errors. Each carries what it concerns, so the CLI can print a precise message and the
 * executor can attribute a failure to a component.
 */

/** Identifies one component of one service: `service/component`. */
export interface ComponentKey {
  service: string;
  component: string;
}

export const keyString = (k: ComponentKey): string => `${k.service}/${k.component}`;

export class AgentError extends Error {
  /** Process exit code the CLI uses when this error reaches it. */
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One broken rule of one field, e.g. `components[1].name: must match ^[a-z0-9][a-z0-9-]*$`. */
export interface FieldIssue {
  field: string;
  rule: string;
}

/** Bad input: a manifest, a config file, a flag. Never leaves anything changed. */
export class ValidationError extends AgentError {
  override readonly exitCode = 2;
  constructor(
    readonly source: string,
    readonly issues: FieldIssue[],
  ) {
    super(`invalid ${source}:\n` + issues.map((i) => `  ${i.field}: ${i.rule}`).join('\n'));
  }
}

/** The registry file cannot be used: not SQLite, not ours, from a newer agent, locked... */
export class RegistryError extends AgentError {
  override readonly exitCode = 3;
}

/** A runtime tool (podman, qemu) failed for one operation on one component or workload. */
export class RuntimeError extends AgentError {
  constructor(
    readonly runtime: string,
    readonly operation: string,
    readonly workload: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${runtime} ${operation}${workload ? ` ${workload}` : ''}: ${message}`, options);
  }
}

/** A named thing (service, component) that does not exist. */
export class NotFoundError extends AgentError {
  override readonly exitCode = 4;
}

/** Another live agent process reconciles this registry; a second one would double every action. */
export class RegistryBusyError extends AgentError {
  override readonly exitCode = 5;
  constructor(
    readonly holderPid: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `agent exec` could not run the command at all: the workload is not there, not running, or cannot
 * be reached. Exit 125, podman's and docker's code for their own failures, so a script tells it
 * from the command's own exit code (which passes through, 126 and 127 included).
 */
export class ExecError extends AgentError {
  override readonly exitCode = 125;
  constructor(
    /** The workload (runtime side) or `service/component` (CLI side) it concerns. */
    readonly target: string,
    /** What went wrong, without the target: "the container is not running (state exited)". */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`exec ${target}: ${detail}`, options);
  }
}
