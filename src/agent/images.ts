/**
 * Where VM boot files may come from. A relative path is inside the first images directory; an
 * absolute path must be inside one of the allowed directories. Pure (path arithmetic only).
 * `apply` refuses a manifest that breaks the rule; a row a master wrote is held to it on read.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { ValidationError, type FieldIssue } from '../errors.js';
import type { ComponentSpec, ServiceSpec } from '../manifest/schema.js';
import type { DesiredState } from '../registry/desired.js';

export function resolveBootPath(p: string, allowedDirs: string[]): { ok: true; path: string } | { ok: false; rule: string } {
  if (p.split('/').includes('..')) return { ok: false, rule: "must not contain '..'" };
  const first = allowedDirs[0];
  if (!first) return { ok: false, rule: 'no image directory is configured' };
  const abs = isAbsolute(p) ? resolve(p) : resolve(first, p);
  const inside = allowedDirs.some((d) => {
    const rel = relative(resolve(d), abs);
    // '..foo.img' is a file inside; only '..' itself or '../...' leaves the directory.
    return rel !== '' && rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel);
  });
  return inside ? { ok: true, path: abs } : { ok: false, rule: `must be inside an allowed image directory (${allowedDirs.join(', ')})` };
}

export const BOOT_FIELDS = ['image', 'kernel', 'initrd'] as const;

/** The resolved boot files of a unikernel component, or the fields that break the rule. */
export function resolveBootFiles(spec: ComponentSpec, allowedDirs: string[]): { files: Partial<Record<(typeof BOOT_FIELDS)[number], string>>; issues: FieldIssue[] } {
  const files: Partial<Record<(typeof BOOT_FIELDS)[number], string>> = {};
  const issues: FieldIssue[] = [];
  for (const field of BOOT_FIELDS) {
    const v = spec[field];
    if (v === undefined) continue;
    const r = resolveBootPath(v, allowedDirs);
    if (r.ok) files[field] = r.path;
    else issues.push({ field, rule: r.rule });
  }
  return { files, issues };
}

/**
 * Desired state with every unikernel row whose boot files break the rule turned invalid, with
 * the reason: the check `apply` makes, for rows a master wrote with any SQLite client. Status,
 * plan and run all read desired state through here, so such a row is shown, never started.
 */
export function withBootFilesChecked(desired: DesiredState, allowedDirs: string[]): DesiredState {
  const components = desired.components.map((c) => {
    if (!c.valid || c.spec.runtime !== 'unikernel') return c;
    const { issues } = resolveBootFiles(c.spec, allowedDirs);
    if (issues.length === 0) return c;
    return { service: c.service, component: c.component, valid: false as const, error: issues.map((i) => `${i.field}: ${i.rule}`).join('; ') };
  });
  return { ...desired, components };
}

/**
 * The check `apply` makes before writing: VM boot files inside this node's allowed image
 * directories (a node setting, so the manifest schema cannot check it). Throws a ValidationError
 * naming the service and the fields; used by `agent apply` and by the NATS source alike.
 */
export function checkBootFiles(specs: ServiceSpec[], allowedDirs: string[]): void {
  for (const s of specs) {
    const issues: FieldIssue[] = [];
    s.components.forEach((c, i) => {
      if (c.runtime !== 'unikernel') return;
      for (const issue of resolveBootFiles(c, allowedDirs).issues) issues.push({ field: `components[${i}].${issue.field}`, rule: issue.rule });
    });
    if (issues.length > 0) throw new ValidationError(`service ${s.name}`, issues);
  }
}
