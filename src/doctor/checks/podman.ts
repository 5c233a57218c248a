/**
 * The podman check: podman answers, the demo's image is there, and a real throwaway container
 * starts through the agent's own runtime (the same `podman run` flags: OCI runtime, ulimits,
 * --init, --network none, --pull never). The container is removed whatever happens; its name is
 * unique per run and in the result's facts, so anyone can check that nothing stayed behind.
 */
import { performance } from 'node:perf_hooks';
import { labelsFor } from '../../identity.js';
import { manifestSchemas } from '../../manifest/schema.js';
import { failureLine, runBounded } from '../../runtime/command.js';
import type { CheckResult } from '../report.js';
import type { DoctorContext } from './context.js';

const INSTALL = 'install podman and runc (scripts/setup), or set podman.binary to where podman is';

/** `podman image exists`: true, false, or why it could not tell. */
async function imageExists(ctx: DoctorContext): Promise<boolean | string> {
  const env = ctx.cfg.podman.containers_conf ? { CONTAINERS_CONF: ctx.cfg.podman.containers_conf } : undefined;
  const bound = { runtime: 'podman', operation: 'image exists', timeoutMs: ctx.cfg.podman.list_timeout_seconds * 1000, read: true };
  try {
    const r = await runBounded(ctx.cfg.podman.binary, ['image', 'exists', ctx.probeImage], bound, { env, reject: false });
    if (r.exitCode === 0) return true;
    if (r.exitCode === 1) return false;
    return `podman image exists failed: ${failureLine(r)}`;
  } catch (err) {
    return (err as Error).message;
  }
}

export async function checkPodman(ctx: DoctorContext): Promise<CheckResult> {
  const { oci_runtime: oci } = ctx.cfg.podman;
  const facts = { binary: ctx.cfg.podman.binary, oci_runtime: oci, image: ctx.probeImage, container: ctx.probeName };
  const probe = await ctx.containers.probe();
  if (!probe.available) return { name: 'podman', status: 'fail', detail: probe.detail, fix: INSTALL, facts };
  const image = await imageExists(ctx);
  if (typeof image === 'string') return { name: 'podman', status: 'fail', detail: image, fix: INSTALL, facts };
  if (!image) {
    return {
      name: 'podman',
      status: 'warn',
      detail: `${probe.detail}; image ${ctx.probeImage} is absent, so no container start was tried`,
      fix: 'scripts/build-image (imports it from busybox-static; no image registry is needed)',
      facts,
    };
  }
  const spec = manifestSchemas().ComponentSpecSchema.parse({ service: 'agent-doctor', name: 'probe', runtime: 'container', image: ctx.probeImage, cmd: ['true'], network: 'none', restart: 'never' });
  const key = { service: 'agent-doctor', component: 'probe' };
  const started = performance.now();
  let result: CheckResult;
  try {
    await ctx.containers.start({ name: ctx.probeName, key, specHash: 'doctor', labels: labelsFor(ctx.probeAgentId, key, 'doctor'), spec });
    const ms = Math.round(performance.now() - started);
    result = { name: 'podman', status: 'ok', detail: `${probe.detail}: a throwaway container of ${ctx.probeImage} started in ${ms} ms`, facts };
  } catch (err) {
    const message = (err as Error).message;
    const hint = /crun|cgroups/i.test(message)
      ? 'set podman.oci_runtime = "runc" (crun fails on cgroups hybrid mode) and apt-get install runc'
      : /ulimit|rlimit|operation not permitted/i.test(message)
        ? 'lower podman.ulimits to at most the hard limits (see the ulimits check)'
        : /runtime|executable file not found/i.test(message)
          ? `install the OCI runtime ${oci} (apt-get install ${oci}) or set podman.oci_runtime`
          : 'run the same with podman by hand to see more: podman run --rm --runtime runc --network none --init IMAGE true';
    result = { name: 'podman', status: 'fail', detail: `a throwaway container did not start (${oci}): ${message}`, fix: hint, facts };
  }
  try {
    await ctx.containers.remove(ctx.probeName);
  } catch (err) {
    return { name: 'podman', status: 'fail', detail: `the throwaway container ${ctx.probeName} could not be removed: ${(err as Error).message}`, fix: `podman rm --force ${ctx.probeName}`, facts };
  }
  return result;
}
