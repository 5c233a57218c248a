// The executor's "in flux" rule on a real registry file: a component whose action was under way,
// or ended, after a pass took its mark is reported by busySince(mark), so that pass does not judge
// it on a listing taken mid-change (a VM whose failed start was still cleaning up looked
// `starting`, and its lease was re-taken). The runtime is a stand-in whose stop the test releases.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import pino from 'pino';
import { Executor } from '../../src/agent/executor.js';
import type { Action } from '../../src/agent/planner.js';
import { Registry } from '../../src/registry/index.js';
import type { Runtime } from '../../src/runtime/types.js';
import { FakeHostNet } from '../helpers/fake-host-net.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-executor-flux-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('busySince(mark) holds a component whose action ran after the mark, and only those', async () => {
  const registry = Registry.open(join(dir, 'agent.db'), { create: true });
  let releaseStop: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (releaseStop = r));
  const runtime = {
    kind: 'container',
    stop: async () => (await stopped, 'stopped'),
    remove: async () => undefined,
  } as unknown as Runtime;
  const executor = new Executor({
    registry,
    runtimes: new Map([['container', runtime]]),
    agentId: registry.meta.agentId(),
    backoff: { baseMs: 1000, maxMs: 60_000 },
    stopGraceSeconds: 1,
    parallelism: 2,
    vmPaths: { home: dir, vmDir: join(dir, 'vm'), imagesDirs: [join(dir, 'images')], sshKey: join(dir, 'images/id_ed25519') },
    net: { bridge: { bridge: 'mcp-br0', gateway: '10.99.0.1', prefix: 24, table: 'mcp' }, subnet: '10.99.0.0/24', host: new FakeHostNet() },
    log: pino({ level: 'silent' }),
  });
  const remove: Action = { type: 'remove', key: { service: 's', component: 'c' }, workload: 's-c', runtime: 'container', reason: 'orphan' };

  const before = executor.mark();
  const [outcome] = executor.dispatch([remove]);
  assert.deepEqual([...executor.busySince(before)], ['s/c'], 'under way');
  releaseStop();
  assert.equal((await outcome)?.ok, true);
  assert.deepEqual([...executor.busyUnits()], [], 'no longer in flight');
  assert.deepEqual([...executor.busySince(before)], ['s/c'], 'ended after the mark: still in flux for that pass');
  assert.deepEqual([...executor.busySince(executor.mark())], [], 'a later pass judges it again');
  registry.close();
});
