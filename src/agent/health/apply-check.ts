/**
 * The node-dependent rule of a `health` table, checked by `apply` (and the NATS source) before
 * anything is written: an exec check on a VM runs over the VM's pinned SSH, so this node must have
 * a host key to pin for it (ssh_host_key, or host_key.pub in the images directory). The manifest
 * schema cannot know the node's files; this refuses with the field named, the registry unchanged.
 */
import { ValidationError, type FieldIssue } from '../../errors.js';
import type { ServiceSpec } from '../../manifest/schema.js';
import { resolveHostKey } from '../placement.js';

export function checkHealthSsh(specs: ServiceSpec[], imagesDirs: string[]): void {
  for (const s of specs) {
    const issues: FieldIssue[] = [];
    s.components.forEach((c, i) => {
      if (c.runtime !== 'unikernel' || c.health?.kind !== 'exec') return;
      try {
        resolveHostKey(c, imagesDirs, `${s.name}-${c.name}`);
      } catch (err) {
        const why = (err as Error).message.replace(/^.*?: (?=no SSH host key|ssh_host_key|\/)/, '');
        issues.push({ field: `components[${i}].health.kind`, rule: `exec runs over the VM's pinned SSH, and this node has no host key to pin for it: ${why}` });
      }
    });
    if (issues.length > 0) throw new ValidationError(`service ${s.name}`, issues);
  }
}
