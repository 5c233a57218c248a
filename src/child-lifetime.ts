/**
 * Long-running helper processes (monitors, event streams) die with the agent, even when it is
 * killed with SIGKILL: they are started through `setpriv --pdeathsig KILL` (util-linux), which
 * sets PR_SET_PDEATHSIG and execs the command, so the kernel kills it when its parent goes. The
 * signal follows the parent *thread* that forked: Node spawns from its main thread (libuv), whose
 * end is the agent's end. The command must itself be the long-lived process (no `timeout` or
 * shell in between: their children would not inherit the death signal).
 */

/**
 * The command line that runs `cmd args` so that it ends when the agent does: SIGKILL by default;
 * `TERM` for a helper that must finish what it is doing first (podman's API service: killed in the
 * middle of a container start it leaves a container process podman has no record of).
 */
export function boundToAgent(cmd: string, args: string[], signal: 'KILL' | 'TERM' = 'KILL'): [string, string[]] {
  return ['setpriv', ['--pdeathsig', signal, cmd, ...args]];
}

/** How long stopping a helper waits for it to exit after its signal. */
const HELPER_EXIT_WAIT_MS = 2000;

/**
 * Resolves once `exited` settles, or after HELPER_EXIT_WAIT_MS: what a helper's stop awaits after
 * signalling it. An agent that exits before its helpers leaves them running in its systemd unit
 * ("remains running after unit stopped").
 */
export function helperExited(exited: PromiseLike<unknown>): Promise<void> {
  const ended = Promise.resolve(exited).then(() => undefined, () => undefined);
  return Promise.race([ended, new Promise<void>((r) => setTimeout(r, HELPER_EXIT_WAIT_MS).unref())]);
}
