/**
 * The bare side of a VM benchmark: the agent's own QEMU argument list with only its state paths
 * and SSH forward moved (so a bare QEMU is the identical launch), a free loopback port, and one
 * SSH readiness probe loop used for the agent's VM and the bare one alike.
 * Invariant: bareArgs changes exactly the pidfile, QMP socket, serial log and the one SLIRP
 * forward on 127.0.0.1, and refuses any argument list it does not recognise.
 */
import { createServer } from 'node:net';
import { probeBanner, sshConnect, type SshTarget } from '../../src/runtime/ssh.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface VmRecordLite {
  name: string;
  sshPort: number;
  hostKey: string;
  sshUser: string;
  args: string[];
  launchedAt: string;
}

export function freePort(avoid: Set<number>): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => (avoid.has(port) ? freePort(avoid).then(resolve, reject) : resolve(port)));
    });
  });
}

/** The agent's argument list with pidfile, QMP socket and serial log moved into `stateDir`, the SSH forward to `port`. */
export function bareArgs(agentArgs: string[], agentStateDir: string, stateDir: string, agentPort: number, port: number): string[] {
  const args = [...agentArgs];
  const fail = (v: string): never => {
    throw new Error(`unexpected QEMU argument ${v} in the agent's argument list`);
  };
  const moved: Record<string, (v: string) => string> = {
    '-pidfile': (v) => (v === `${agentStateDir}/qemu.pid` ? `${stateDir}/qemu.pid` : fail(v)),
    '-qmp': (v) => (v.startsWith(`unix:${agentStateDir}/qmp.sock,`) ? v.replace(`unix:${agentStateDir}/`, `unix:${stateDir}/`) : fail(v)),
    '-serial': (v) => (v === `file:${agentStateDir}/console.log` ? `file:${stateDir}/console.log` : fail(v)),
  };
  let rewritten = 0;
  for (let i = 0; i < args.length; i++) {
    const opt = args[i]!;
    if (opt in moved) {
      args[i + 1] = moved[opt]!(args[i + 1]!);
      rewritten++;
    } else if (opt === '-netdev') {
      const v = args[i + 1]!;
      const fwd = `hostfwd=tcp:127.0.0.1:${agentPort}-:22`;
      const fwds = v.split(',').filter((p) => p.startsWith('hostfwd='));
      if (!v.startsWith('user,') || fwds.length !== 1 || fwds[0] !== fwd) fail(v);
      args[i + 1] = v.replace(fwd, `hostfwd=tcp:127.0.0.1:${port}-:22`);
      rewritten++;
    }
  }
  if (rewritten !== 4) throw new Error(`expected to rewrite 4 arguments (pidfile, qmp, serial, netdev), rewrote ${rewritten}`);
  if (args.some((a) => a.includes(agentStateDir))) throw new Error(`an argument still points into ${agentStateDir}: ${args.join(' ')}`);
  return args;
}

/**
 * Polls until SSH answers with the pinned host key: a banner probe (300 ms) every `everyMs`, then a
 * full handshake. Resolves with the epoch-ms time (from `clock`) of the banner and of the handshake.
 * `stillAlive` false or the deadline passed: rejects.
 */
export async function sshReady(
  target: SshTarget,
  clock: () => number,
  o: { everyMs: number; deadline: number; stillAlive: () => boolean; what: string },
): Promise<{ bannerAt: number; readyAt: number; probes: number }> {
  let bannerAt: number | undefined;
  let probes = 0;
  for (;;) {
    if (clock() > o.deadline) throw new Error(`${o.what}: SSH did not answer in time`);
    if (!o.stillAlive()) throw new Error(`${o.what}: QEMU exited while booting`);
    probes++;
    if (await probeBanner(target.host, target.port, 300)) {
      bannerAt ??= clock();
      try {
        const c = await sshConnect(target, 10_000);
        const readyAt = clock();
        c.end();
        return { bannerAt, readyAt, probes };
      } catch (err) {
        if (/does not match the pinned key/.test((err as Error).message)) throw err;
      }
    }
    await sleep(o.everyMs);
  }
}
