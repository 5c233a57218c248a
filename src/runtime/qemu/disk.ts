/**
 * What a VM boots from, checked and prepared before QEMU runs: the boot files exist, the image
 * is the one the component expects (sha256 attestation), and a qcow2 overlay of it is made in
 * the VM's state dir. A disk image is never written: the overlay takes every write.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { RuntimeError } from '../../errors.js';
import { runBounded } from '../command.js';
import type { WorkloadSpec } from '../types.js';
import { stateFiles } from './args.js';

/** `qemu-img` answers in milliseconds for an overlay; one that takes 30 s is killed. */
const IMG_TIMEOUT_MS = 30_000;

/** Every boot file of the placement exists. */
export function checkBootFiles(w: WorkloadSpec): void {
  for (const [field, path] of Object.entries(w.vm?.files ?? {})) {
    if (path && !existsSync(path)) throw new RuntimeError('qemu', 'start', w.name, `${field} ${path} does not exist`);
  }
}

/** sha256 of the boot image, checked before every boot when the component declares one. */
export async function attest(w: WorkloadSpec): Promise<void> {
  const expected = w.spec.image_sha256;
  if (!expected) return;
  const file = w.vm?.files.image ?? w.vm?.files.kernel;
  if (!file) return;
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => createReadStream(file).on('data', (d) => hash.update(d)).on('end', resolve).on('error', reject));
  const actual = hash.digest('hex');
  if (actual !== expected) {
    throw new RuntimeError('qemu', 'start', w.name, `image attestation failed: ${file} has sha256 ${actual}, the component expects ${expected}; not booting it`);
  }
}

/**
 * The overlay the VM boots (made once, kept across restarts of the same spec), or undefined for
 * a kernel-only boot. Its backing format is whatever `qemu-img info` says the image is.
 */
export async function ensureOverlay(imgBinary: string, w: WorkloadSpec, dir: string): Promise<string | undefined> {
  const image = w.vm?.files.image;
  if (!image) return undefined;
  const disk = stateFiles(dir).overlay;
  if (existsSync(disk)) return disk;
  const img = { runtime: 'qemu', operation: 'start', workload: w.name, timeoutMs: IMG_TIMEOUT_MS };
  const info = await runBounded(imgBinary, ['info', '--output', 'json', image], img).catch((err: { stderr?: string }) => {
    if (err instanceof RuntimeError) throw err;
    throw new RuntimeError('qemu', 'start', w.name, `qemu-img cannot read ${image}: ${err.stderr ?? String(err)}`);
  });
  const format = (JSON.parse(info.stdout) as { format?: string }).format ?? 'raw';
  await runBounded(imgBinary, ['create', '-q', '-f', 'qcow2', '-F', format, '-b', image, disk], img);
  return disk;
}
