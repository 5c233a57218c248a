/**
 * Host-port arithmetic for SLIRP forwards, pure. The preferred SSH port of a VM is
 * `10022 + hash(name) % 100` (the reference's rule); `hash % 100` collides with 50% odds at
 * about 12 VMs, so a collision moving to the next free port is the normal case, not an edge case.
 */
import { createHash } from 'node:crypto';

export const SSH_PORT_BASE = 10022;
export const SSH_PORT_SPREAD = 100;
/** Where SSH forwards live; the search wraps around inside it. */
export const SSH_PORT_RANGE = { first: 10022, last: 10999 } as const;
/** Where declared guest ports without a fixed host port get their host port. */
export const SERVICE_PORT_RANGE = { first: 20000, last: 29999 } as const;

/** A stable 32-bit number from a name (first 4 bytes of sha256). */
export function nameHash(name: string): number {
  return createHash('sha256').update(name).digest().readUInt32BE(0);
}

export function preferredSshPort(name: string): number {
  return SSH_PORT_BASE + (nameHash(name) % SSH_PORT_SPREAD);
}

/**
 * The first port from `preferred` upward (wrapping inside `range`) that `isTaken` rejects not.
 * Returns undefined when the whole range is taken.
 */
export function pickPort(preferred: number, range: { first: number; last: number }, isTaken: (port: number) => boolean): number | undefined {
  for (const port of candidatePorts(preferred, range)) if (!isTaken(port)) return port;
  return undefined;
}

/** Every port of `range`, from `preferred` upward, wrapping around. */
export function* candidatePorts(preferred: number, range: { first: number; last: number }): Generator<number> {
  const size = range.last - range.first + 1;
  const start = preferred >= range.first && preferred <= range.last ? preferred : range.first;
  for (let i = 0; i < size; i++) yield range.first + ((start - range.first + i) % size);
}
