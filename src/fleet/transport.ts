/**
 * One SSH call to one node (ssh2): connect, check the host key against the pinned ones before
 * anything is sent (no trust on first use), run a fixed argv, write stdin and end it, collect
 * stdout/stderr and the exit code. The whole call is bounded by a timeout that fails this node
 * alone. Errors are NodeError, naming the node.
 */
import type { Client, ConnectConfig } from 'ssh2';
import { AgentError } from '../errors.js';
import { fingerprint, keyBlobOf, keyLineOf } from './host-keys.js';
import type { FleetNode } from './inventory.js';
import { commandLine } from './quote.js';

// ssh2 costs ~40 ms to load: only fleet commands pay for it.
let ssh2: Promise<typeof import('ssh2')> | undefined;
const loadSsh2 = (): Promise<typeof import('ssh2')> => (ssh2 ??= import('ssh2'));

export type NodeFailure = 'unreachable' | 'host-key' | 'timeout' | 'auth' | 'remote';

/** One node could not do what was asked; `kind` tells an operator where to look. */
export class NodeError extends AgentError {
  constructor(
    readonly node: string,
    readonly kind: NodeFailure,
    message: string,
  ) {
    super(`node ${node}: ${message}`);
  }
}

export interface ExecOutput {
  code: number;
  stdout: string;
  stderr: string;
}

function baseConfig(node: FleetNode, timeoutMs: number): ConnectConfig {
  return { host: node.host, port: node.port, username: node.user, readyTimeout: timeoutMs, keepaliveInterval: 0 };
}

/** Classifies a connect-phase error from ssh2 or the socket. */
function connectFailure(node: FleetNode, err: Error & { level?: string }): NodeError {
  if (err.level === 'client-authentication') return new NodeError(node.name, 'auth', `${node.user}@${node.host}:${node.port} refused the master's key (${node.keyPath}): check the node's authorized_keys`);
  if (/timed out/i.test(err.message)) return new NodeError(node.name, 'timeout', `no SSH handshake with ${node.host}:${node.port} in time`);
  return new NodeError(node.name, 'unreachable', `cannot reach ${node.host}:${node.port}: ${err.message}`);
}

/**
 * Runs `argv` on the node with `stdin`. Resolves with the exit code and output (a non-zero code is
 * not an error here); rejects with a NodeError when the node cannot be reached, its host key is
 * not a pinned one, or the whole call takes longer than `timeoutMs`.
 */
export async function runOnNode(node: FleetNode, argv: readonly string[], opts: { stdin?: string; timeoutMs: number }): Promise<ExecOutput> {
  const { Client } = await loadSsh2();
  const pinned = node.hostKeys.map(keyBlobOf);
  const command = commandLine(argv);
  return new Promise<ExecOutput>((resolve, reject) => {
    const client: Client = new Client();
    let settled = false;
    let refusedKey: Buffer | undefined;
    const finish = (err: NodeError | undefined, out?: ExecOutput): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      if (err) reject(err);
      else resolve(out!);
    };
    const timer = setTimeout(() => finish(new NodeError(node.name, 'timeout', `no answer within ${opts.timeoutMs / 1000} s (--timeout)`)), opts.timeoutMs);
    // Listens for good: ssh2 may emit 'error' more than once, and one with no listener would throw.
    client.on('error', (err: Error & { level?: string }) => {
      if (refusedKey) finish(new NodeError(node.name, 'host-key', `host key ${fingerprint(refusedKey)} is not the pinned one (nothing was sent; if the node was re-keyed, check with agent fleet keyscan ${node.name} and update host_key)`));
      else finish(connectFailure(node, err));
    });
    client.on('close', () => finish(new NodeError(node.name, 'unreachable', 'the connection closed before the command finished')));
    client.on('ready', () => {
      client.exec(command, (err, stream) => {
        if (err) return finish(new NodeError(node.name, 'remote', `cannot run the agent: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code: number | undefined;
        stream.on('data', (b: Buffer) => out.push(b));
        stream.stderr.on('data', (b: Buffer) => errOut.push(b));
        stream.on('exit', (c: number | null, signal?: string) => {
          code = c ?? (signal ? 128 : 255);
        });
        stream.on('close', () =>
          finish(undefined, { code: code ?? 255, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') }),
        );
        stream.end(opts.stdin ?? '');
      });
    });
    client.connect({
      ...baseConfig(node, opts.timeoutMs),
      privateKey: node.privateKey,
      hostVerifier: (key: Buffer) => {
        if (pinned.some((p) => p.equals(key))) return true;
        refusedKey = key;
        return false;
      },
    });
  });
}

/**
 * The node's host key, as a line to check and paste into the inventory. Connects, captures the
 * key in hostVerifier, refuses it (so nothing is authenticated or sent), and returns it.
 */
export async function scanHostKey(node: FleetNode, timeoutMs: number): Promise<string> {
  const { Client } = await loadSsh2();
  return new Promise<string>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let seen: Buffer | undefined;
    const finish = (err: NodeError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      if (seen) resolve(keyLineOf(seen));
      else reject(err ?? new NodeError(node.name, 'unreachable', 'the connection closed before the host key was offered'));
    };
    const timer = setTimeout(() => finish(new NodeError(node.name, 'timeout', `no SSH handshake within ${timeoutMs / 1000} s (--timeout)`)), timeoutMs);
    client.on('error', (err: Error & { level?: string }) => finish(connectFailure(node, err)));
    client.on('close', () => finish(undefined));
    client.connect({
      ...baseConfig(node, timeoutMs),
      hostVerifier: (key: Buffer) => {
        seen = Buffer.from(key);
        setImmediate(() => finish(undefined));
        return false;
      },
    });
  });
}
