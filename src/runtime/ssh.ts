/**
 * SSH to a VM with ssh2. Readiness polls a raw TCP connect for the `SSH-` banner (an ssh client's
 * own retry loop would hang for its whole timeout while the guest network is down), then does a
 * real handshake. The guest's host key is pinned: a key that is not the expected one is refused.
 */
import { connect as tcpConnect } from 'node:net';
import type { Client, ConnectConfig } from 'ssh2';

// ssh2 costs ~40 ms to load; only VM starts and `agent exec` need it, so not every CLI call pays.
let ssh2: Promise<typeof import('ssh2')> | undefined;
const loadSsh2 = (): Promise<typeof import('ssh2')> => (ssh2 ??= import('ssh2'));

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: Buffer | string;
  /** The expected host key, as an OpenSSH public key line: `ssh-ed25519 AAAA... [comment]`. */
  hostKey: string;
}

/** The key blob of an OpenSSH public key line. */
export function keyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1];
  if (!b64) throw new Error('not an OpenSSH public key line');
  return Buffer.from(b64, 'base64');
}

/** One TCP connect: resolves true if the peer greets with an SSH banner within `timeoutMs`. */
export function probeBanner(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port });
    let got = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.length >= 4) done(got.startsWith('SSH-'));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(got.startsWith('SSH-')));
  });
}

function config(t: SshTarget, timeoutMs: number): ConnectConfig {
  const expected = keyBlob(t.hostKey);
  return {
    host: t.host,
    port: t.port,
    username: t.user,
    privateKey: t.privateKey,
    readyTimeout: timeoutMs,
    hostVerifier: (key: Buffer) => key.equals(expected),
  };
}

/** Connects, authenticates, checks the pinned host key; resolves a connected client. */
export async function sshConnect(t: SshTarget, timeoutMs = 10_000): Promise<Client> {
  const { Client } = await loadSsh2();
  return new Promise((resolve, reject) => {
    const c = new Client();
    let settled = false;
    // ssh2's readyTimeout bounds the handshake; this bounds the whole call whatever ssh2 does.
    const guard = setTimeout(() => {
      if (settled) return;
      settled = true;
      c.destroy();
      reject(new Error(`SSH to ${t.host}:${t.port} did not complete its handshake within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs + 1000);
    c.once('ready', () => {
      clearTimeout(guard);
      if (settled) return void c.end();
      settled = true;
      resolve(c);
    });
    // A listener for good, not `once`: ssh2 may emit 'error' again (a refused handshake, then the
    // socket's reset), and an 'error' with no listener throws, which would end the whole agent.
    // Errors after 'ready' belong to whoever uses the connection (see sshExec).
    c.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      c.end();
      const msg = /verification failed/i.test(err.message) ? `host key of ${t.host}:${t.port} does not match the pinned key` : err.message;
      reject(new Error(msg, { cause: err }));
    });
    c.connect(config(t, timeoutMs));
  });
}

/** SSH to the VM could not be set up at all (nothing ran). */
export class SshConnectError extends Error {}

export interface ExecResult {
  code: number;
  signal: string | undefined;
}

export interface SshIo {
  stdout: (b: Buffer) => void;
  stderr: (b: Buffer) => void;
  /** Fed to the command's stdin; its end sends EOF. Undefined: EOF at once (nothing waits for input). */
  stdin?: NodeJS.ReadableStream;
}

/**
 * Runs `command`, streaming output to the given sinks; resolves with its exit status. Connecting
 * (handshake, key, auth) fails with SshConnectError, so a caller tells "could not run it" from
 * "it ran and the connection dropped".
 */
export async function sshExec(t: SshTarget, command: string, out: SshIo, timeoutMs = 10_000): Promise<ExecResult> {
  let c: Client;
  try {
    c = await sshConnect(t, timeoutMs);
  } catch (err) {
    throw new SshConnectError((err as Error).message, { cause: err });
  }
  try {
    return await new Promise<ExecResult>((resolve, reject) => {
      let code = 255;
      let signal: string | undefined;
      // The connection can drop under a running command (the guest powers off): that ends the
      // command too, with no exit status (255, like OpenSSH).
      c.once('error', reject);
      c.once('close', () => resolve({ code, signal }));
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        stream.on('data', out.stdout);
        stream.stderr.on('data', out.stderr);
        // The channel's stdin: without this EOF a command that reads it (cat) waits forever.
        if (out.stdin) {
          out.stdin.pipe(stream);
          stream.once('close', () => out.stdin?.unpipe(stream));
        } else stream.end();
        stream.on('exit', (c2: number | null, sig?: string) => {
          code = c2 ?? 255;
          signal = sig ?? undefined;
        });
        stream.on('close', () => resolve({ code, signal }));
      });
    });
  } finally {
    c.end();
  }
}

/**
 * Waits until SSH answers with the pinned key and accepts our key, or the deadline passes, or
 * `stillAlive` says the VM died (no point waiting then). Returns undefined when ready, else why not.
 */
export async function waitForSsh(t: SshTarget, deadline: number, stillAlive: () => boolean): Promise<string | undefined> {
  let lastError = 'no SSH banner';
  while (Date.now() < deadline) {
    if (!stillAlive()) return 'the VM exited while booting';
    // Short attempts: SLIRP accepts the host side at once even before the guest listens, then
    // holds the connection for seconds; a fresh connect gets through as soon as sshd is up.
    if (await probeBanner(t.host, t.port, 300)) {
      try {
        const c = await sshConnect(t, Math.max(1000, Math.min(10_000, deadline - Date.now())));
        c.end();
        return undefined;
      } catch (err) {
        lastError = (err as Error).message;
        if (/does not match the pinned key/.test(lastError)) return lastError; // never retry a wrong key
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return `SSH did not answer (${lastError})`;
}
