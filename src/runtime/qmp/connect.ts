/**
 * Reaching QEMU's QMP unix socket, within a time bound, with the errno of a failure told as a
 * QmpError kind: a stale socket of a dead QEMU (refused) is not a missing one (not-found) nor a
 * busy one. Resolves with the connected socket; the QMP handshake is the client's.
 */
import { createConnection, type Socket } from 'node:net';
import { QmpError } from './errors.js';

export function connectSocket(socketPath: string, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createConnection({ path: socketPath });
    let settled = false;
    const fail = (err: QmpError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new QmpError('connect-failed', socketPath, undefined, `connect did not complete within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => fail(connectError(socketPath, err)));
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** The QmpError of a failed connect, by errno. */
function connectError(socketPath: string, err: NodeJS.ErrnoException): QmpError {
  const code = err.code;
  const opts = { cause: err, code };
  switch (code) {
    case 'ECONNREFUSED':
      return new QmpError('refused', socketPath, undefined, 'connection refused: nothing listens on this socket (stale socket of a dead QEMU?)', opts);
    case 'ENOENT':
      return new QmpError('not-found', socketPath, undefined, 'no such socket (QEMU not started, or exited and removed it)', opts);
    case 'EAGAIN':
      return new QmpError('busy', socketPath, undefined, 'QMP socket busy: its backlog is full (another client is connected and one more waits)', opts);
    default:
      return new QmpError('connect-failed', socketPath, undefined, `cannot connect: ${err.message}`, opts);
  }
}
