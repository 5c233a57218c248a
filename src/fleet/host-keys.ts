/**
 * Pinned host keys: public key lines, known_hosts lookup (plain and hashed entries), and the
 * SHA256 fingerprint OpenSSH prints. Pure: the caller reads the files.
 */
import { createHash, createHmac } from 'node:crypto';

const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$/;

export function isKeyLine(text: string): boolean {
  return KEY_LINE.test(text.trim());
}

/** The key blob (wire format) of `type base64 [comment]`. */
export function keyBlobOf(line: string): Buffer {
  return Buffer.from(line.trim().split(/\s+/)[1] ?? '', 'base64');
}

/** `SHA256:…` as `ssh-keygen -l` prints it (base64 without padding). */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type inside a wire-format blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `type base64` for a blob: the line an operator pastes as host_key. */
export function keyLineOf(blob: Buffer): string {
  return `${keyTypeOf(blob)} ${blob.toString('base64')}`;
}

/** Whether one known_hosts host pattern list names this host (plain names or `|1|salt|hash`). */
function hostMatches(field: string, names: string[]): boolean {
  return field.split(',').some((pattern) => {
    if (pattern.startsWith('|1|')) {
      const [, , salt, hash] = pattern.split('|');
      if (!salt || !hash) return false;
      return names.some((n) => createHmac('sha1', Buffer.from(salt, 'base64')).update(n).digest('base64') === hash);
    }
    return names.includes(pattern);
  });
}

/** The key lines a known_hosts file holds for host:port (markers like @revoked are skipped). */
export function hostKeysFromKnownHosts(text: string, host: string, port: number): string[] {
  const names = port === 22 ? [host] : [`[${host}]:${port}`];
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('@')) continue;
    const [hosts, type, b64] = line.split(/\s+/);
    if (!hosts || !type || !b64) continue;
    if (hostMatches(hosts, names) && isKeyLine(`${type} ${b64}`)) out.push(`${type} ${b64}`);
  }
  return out;
}
