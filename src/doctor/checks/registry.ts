/**
 * Doctor checks of the node's files: the registry (there, readable as a registry, writable with
 * its directory, not open to other users), and the images directory (the boot files, pinned host
 * keys and the agent's SSH key that the registry's VMs name; with no VM asked for, what the demo
 * needs). Reads only: the doctor never creates or migrates the registry.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolveBootFiles } from '../../agent/images.js';
import { checkSshKey, resolveHostKey } from '../../agent/placement.js';
import type { ComponentSpec } from '../../manifest/schema.js';
import { registryWritability } from '../../registry/writable.js';
import type { CheckResult } from '../report.js';
import { DEMO_VM_FILES } from '../rules.js';
import type { DoctorContext } from './context.js';

export async function checkRegistry(ctx: DoctorContext): Promise<CheckResult> {
  const path = ctx.cfg.db;
  const facts = { path };
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) {
    const dir = dirname(path);
    const dirOk = statSync(dir, { throwIfNoEntry: false })?.isDirectory();
    if (dirOk) {
      try {
        accessSync(dir, constants.W_OK);
      } catch {
        return { name: 'registry', status: 'fail', detail: `no registry at ${path}, and ${dir} is not writable: it cannot be created`, fix: `make ${dir} writable for the agent, or point --db / AGENT_DB / db elsewhere`, facts };
      }
    }
    return { name: 'registry', status: 'warn', detail: `no registry at ${path} yet`, fix: 'agent apply -f MANIFEST or agent run creates it (check --db / AGENT_DB / db if it should exist)', facts };
  }
  if (!st.isFile()) return { name: 'registry', status: 'fail', detail: `${path} is not a file`, fix: 'point --db / AGENT_DB / db at the registry file', facts };
  const d = await ctx.desired();
  if (d.state === 'unreadable') return { name: 'registry', status: 'fail', detail: d.message, fix: 'restore the registry from a backup, or check --db / AGENT_DB / db', facts };
  const w = registryWritability(path);
  if (!w.writable) return { name: 'registry', status: 'fail', detail: `${path} takes no writes: ${w.reason}`, fix: `make ${path} and its directory writable for the agent, and free space on that filesystem`, facts };
  const counts = d.state === 'read' ? `${d.desired.services.length} service(s), ${d.desired.components.length} component(s)` : 'empty';
  const mode = st.mode & 0o777;
  const modeText = `mode ${mode.toString(8).padStart(4, '0')}`;
  if (mode & 0o077) {
    return { name: 'registry', status: 'warn', detail: `${path}: ${counts}, writable, but ${modeText}: other users can read it (it holds the services' env)`, fix: `chmod 600 ${path}`, facts };
  }
  return { name: 'registry', status: 'ok', detail: `${path}: ${counts}, readable and writable, ${modeText}`, facts };
}

/** What is wrong with one VM's files, as `workload: problem` lines (none: all there). */
function vmProblems(spec: ComponentSpec, workload: string, ctx: DoctorContext): string[] {
  const dirs = ctx.paths.imagesDirs;
  const problems: string[] = [];
  const { files, issues } = resolveBootFiles(spec, dirs);
  for (const i of issues) problems.push(`${workload}: ${i.field} ${i.rule}`);
  for (const [field, path] of Object.entries(files)) {
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      problems.push(`${workload}: ${field} ${path} ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : 'cannot be read'}`);
    }
  }
  for (const probe of [() => resolveHostKey(spec, dirs, workload), () => checkSshKey(ctx.paths.sshKey, workload)]) {
    try {
      probe();
    } catch (err) {
      // A RuntimeError reads `qemu place WORKLOAD: why`: keep the why.
      problems.push(`${workload}: ${(err as Error).message.replace(/^qemu place \S+: /, '')}`);
    }
  }
  return problems;
}

export async function checkImages(ctx: DoctorContext): Promise<CheckResult> {
  const dir = ctx.paths.imagesDirs[0]!;
  const d = await ctx.desired();
  const vms = d.state === 'read' ? d.desired.components.flatMap((c) => (c.valid && c.spec.runtime === 'unikernel' ? [{ spec: c.spec, workload: `${c.service}/${c.component}` }] : [])) : [];
  const facts = { images_dir: dir, ssh_key: ctx.paths.sshKey, vms: vms.length };
  if (vms.length > 0) {
    const problems = [...new Set(vms.flatMap((v) => vmProblems(v.spec, v.workload, ctx)))];
    if (problems.length === 0) return { name: 'images', status: 'ok', detail: `${vms.length} VM(s): boot files, host keys and the SSH key ${ctx.paths.sshKey} are there`, facts };
    const more = problems.length > 3 ? ` (+${problems.length - 3} more)` : '';
    return { name: 'images', status: 'fail', detail: `${problems.slice(0, 3).join('; ')}${more}`, fix: `scripts/build-guest ${dir} builds the guest's files and keys; or fix the paths in the manifests (qemu.images_dirs, qemu.ssh_key)`, facts };
  }
  // No VM asked for: what the demo's VM would need (examples/demo.toml), as a warning only.
  const needed = [...Object.values(DEMO_VM_FILES).map((f) => join(dir, f)), join(dir, 'host_key.pub'), ctx.paths.sshKey];
  const missing = needed.filter((p) => {
    try {
      accessSync(p, constants.R_OK);
      return false;
    } catch {
      return true;
    }
  });
  const head = d.state === 'read' ? 'no VM in the registry' : 'no registry to read VMs from';
  if (missing.length === 0) return { name: 'images', status: 'ok', detail: `${head}; ${dir} has what the demo VM needs`, facts };
  return { name: 'images', status: 'warn', detail: `${head}; the demo VM would not boot: missing ${missing.join(', ')}`, fix: `scripts/build-guest ${dir}`, facts };
}
