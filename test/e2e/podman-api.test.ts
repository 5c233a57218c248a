// podman's REST API as a real part of `agent run`: the agent starts `podman system service` on
// podman.sock beside the registry, restarts a killed container through it (its debug log
// says which way each start went), keeps restarting containers through the CLI when the service
// is killed behind its back and starts the service again, and leaves no service or socket behind.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { SLEEP, TestNode, containerService, row, waitFor } from '../helpers/agent.js';


/** Live (not zombie) `podman system service` processes serving this socket. */
function servicePids(socket: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (argv[0] === 'podman' && argv[1] === 'system' && argv[2] === 'service' && argv.includes(`unix://${socket}`)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

interface LogLine {
  msg: string;
  workload?: string;
  via?: string;
  pid?: number;
  time: number;
}

function logLines(node: TestNode): LogLine[] {
  return readFileSync(join(node.dir, 'agent.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

const starts = (node: TestNode, workload: string): LogLine[] => logLines(node).filter((l) => l.workload === workload && l.via !== undefined);
const readies = (node: TestNode): LogLine[] => logLines(node).filter((l) => /^podman API service ready/.test(l.msg));

async function startedAt(workload: string): Promise<string> {
  return (await execa('podman', ['inspect', '--format', '{{.State.StartedAt}}', workload])).stdout.trim();
}

describe('podman REST API service', () => {
  it('restarts a killed container through the API; CLI when the service is killed, which comes back; nothing left after stop', async (t) => {
    const node = new TestNode({ AGENT_RESYNC: '0 0 0 1 1 *' });
    let socket: string | undefined;
    t.after(async () => {
      await node.cleanup();
      if (socket) for (const pid of servicePids(socket)) process.kill(pid, 'SIGKILL');
    });
    const svc = TestNode.serviceName('pa');
    const w = `${svc}-a`;
    await node.apply(containerService(svc, { a: SLEEP }));
    const agent = node.startAgent();
    await waitFor('the container in sync', async () => row(await node.status(), svc, 'a').drift === 'in-sync', 60_000);
    socket = join(node.dir, 'podman.sock');
    await waitFor('the API service ready', async () => readies(node).length === 1, 30_000);
    const [first] = servicePids(socket);
    assert.ok(first, 'a podman system service on the agent\'s socket');
    assert.ok(readFileSync(`/proc/${first}/environ`, 'utf8').split('\0').includes(`MCP_AGENT_ID=${node.agentId()}`), 'the service carries the agent\'s marker');

    // 1. a container killed behind the agent's back is started again, through the API
    let before = await startedAt(w);
    await execa('podman', ['kill', w]);
    await waitFor('the killed container started again', async () => (await startedAt(w)) !== before && row(await node.status(), svc, 'a').observed === 'running', 30_000);
    assert.deepEqual(starts(node, w).map((l) => l.via), ['api'], JSON.stringify(starts(node, w)));

    // 2. the service killed by pid: the next restart cannot use it (gone, or a new one not yet
    // answering: the CLI), and the agent starts the service again
    const startsBefore = starts(node, w).length;
    process.kill(first, 'SIGKILL');
    before = await startedAt(w);
    await execa('podman', ['kill', w]);
    await waitFor('the container started again without the service', async () => (await startedAt(w)) !== before && row(await node.status(), svc, 'a').observed === 'running', 30_000);
    const after = starts(node, w).slice(startsBefore);
    assert.equal(after.length, 1, JSON.stringify(after));
    const secondReady = () => readies(node)[1];
    // Through the CLI, unless a new service already answered when the restart was issued.
    assert.ok(after[0]!.via === 'cli' || (secondReady() !== undefined && secondReady()!.time <= after[0]!.time), JSON.stringify({ after, readies: readies(node) }));
    await waitFor('the API service started again', async () => readies(node).length === 2, 30_000);
    const [second] = servicePids(socket);
    assert.ok(second !== undefined && second !== first, `a new service (was ${first}, now ${second})`);

    // 3. and through it again
    before = await startedAt(w);
    const startsNow = starts(node, w).length;
    await execa('podman', ['kill', w]);
    await waitFor('the container started again', async () => (await startedAt(w)) !== before && row(await node.status(), svc, 'a').observed === 'running', 30_000);
    assert.deepEqual(starts(node, w).slice(startsNow).map((l) => l.via), ['api']);

    // 4. the agent stops: no service, no socket, no directory
    agent.kill('SIGTERM');
    const r = await agent;
    assert.equal(r.exitCode, 0, r.stderr?.toString());
    await waitFor('no service process after the agent stopped', async () => servicePids(socket!).length === 0, 10_000);
    assert.equal(existsSync(socket), false, 'socket removed');
  });
});
