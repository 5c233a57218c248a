/**
 * `agent status [SERVICE[/COMPONENT]]` and `status --check`: pure functions over a finished
 * StatusReport, so they behave the same whether the report was computed here or by the running
 * agent. A filtered report keeps the registry, agent and runtime facts, and its summary counts
 * only the rows it kept.
 */
import type { StatusReport } from '../agent/status.js';
import { NotFoundError, ValidationError } from '../errors.js';

export interface StatusRef {
  service: string;
  component: string | undefined;
}

const NAME = '[a-z0-9][a-z0-9-]*';
const REF = new RegExp(`^(${NAME})(?:/(${NAME}))?$`);

export function parseStatusRef(arg: string): StatusRef {
  const m = REF.exec(arg);
  if (!m) {
    throw new ValidationError('status argument', [{ field: 'SERVICE[/COMPONENT]', rule: `must look like web or web/api (lower-case letters, digits, -), got '${arg}'` }]);
  }
  return { service: m[1]!, component: m[2] };
}

/** The rows of `ref` (a service's components and its orphan workloads); NotFound when there are none. */
export function filterStatus(report: StatusReport, ref: StatusRef): StatusReport {
  const ofService = report.components.filter((c) => c.service === ref.service);
  const components = ref.component === undefined ? ofService : ofService.filter((c) => c.component === ref.component);
  if (components.length === 0) {
    if (ref.component === undefined) throw new NotFoundError(`no service ${ref.service} in the registry, nor a workload of it on this node`);
    const has = [...new Set(ofService.map((c) => c.component))];
    throw new NotFoundError(`no component ${ref.service}/${ref.component} in the registry, nor a workload of it on this node${has.length > 0 ? ` (service ${ref.service} has: ${has.join(', ')})` : ''}`);
  }
  const summary: Record<string, number> = {};
  for (const c of components) summary[c.drift] = (summary[c.drift] ?? 0) + 1;
  return { ...report, summary, components };
}

/** `status --check`: true when any row is not in sync (missing, backing off, unknown, orphan, ...). */
export const statusDrifted = (report: StatusReport): boolean => report.components.some((c) => c.drift !== 'in-sync');
