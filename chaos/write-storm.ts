/**
 * Scenario 2, the master write storm: several `sqlite3` processes write the registry at once, as
 * masters would (docs/registry.md: `.timeout 5000`, `-bail`, foreign keys on, one `BEGIN
 * IMMEDIATE` transaction per push), inserting, changing and deleting components and services
 * while `agent run` reconciles. When they stop, the agent must converge to exactly what the
 * registry then says, within a deadline, and no writer may ever meet SQLITE_BUSY.
 */
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { IMAGE, TestNode, podmanPs, waitFor, type StatusJson } from '../test/helpers/agent.js';
import { Rng, sleep, type ChaosSizes } from './lib/config.js';
import { checkNodeAtRest, NODE_INVARIANTS, type Desired } from './lib/invariants.js';
import { Sightings } from './lib/observe.js';
import { Tally } from './lib/report.js';
import type { Janitor } from './lib/janitor.js';

const WRITERS = 3;
const SERVICES = ['a', 'b', 'c', 'd'];
const COMPONENTS = ['x', 'y', 'z'];

/** One push, in the shape docs/registry.md gives a master. */
function randomPush(rng: Rng, prefix: string): string {
  const svc = `${prefix}${rng.pick(SERVICES)}`;
  const comp = rng.pick(COMPONENTS);
  const cmd = JSON.stringify(['sleep', String(2147483600 + rng.int(0, 3))]);
  const body = (() => {
    switch (rng.pick(['upsert', 'upsert', 'upsert', 'delete component', 'delete service', 'toggle active', 'push service'])) {
      case 'upsert':
        return `INSERT INTO services (name) VALUES ('${svc}') ON CONFLICT (name) DO NOTHING;
INSERT INTO components (service, name, runtime, image, cmd, env) VALUES ('${svc}', '${comp}', 'container', '${IMAGE}', '${cmd}', '{"N":"${rng.int(0, 2)}"}')
ON CONFLICT (service, name) DO UPDATE SET cmd = excluded.cmd, env = excluded.env;`;
      case 'delete component':
        return `DELETE FROM components WHERE service = '${svc}' AND name = '${comp}';`;
      case 'delete service':
        return `DELETE FROM services WHERE name = '${svc}';`;
      case 'toggle active':
        return `UPDATE services SET active = 1 - active, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE name = '${svc}';`;
      default:
        return `INSERT INTO services (name, active) VALUES ('${svc}', 1) ON CONFLICT (name) DO UPDATE SET active = 1;
DELETE FROM components WHERE service = '${svc}';
INSERT INTO components (service, name, runtime, image, cmd) VALUES ('${svc}', '${comp}', 'container', '${IMAGE}', '${cmd}');`;
    }
  })();
  return `PRAGMA foreign_keys = ON;\nBEGIN IMMEDIATE;\n${body}\nCOMMIT;\n`;
}

/** What the registry says must run: components of active services. */
function finalRegistry(db: string): Desired {
  const conn = new Database(db, { readonly: true });
  try {
    const rows = conn.prepare('SELECT c.service, c.name FROM components c JOIN services s ON s.name = c.service WHERE s.active = 1').all() as Array<{ service: string; name: string }>;
    return new Map(rows.map((r) => [`${r.service}-${r.name}`, { service: r.service, component: r.name, runtime: 'container' as const }]));
  } finally {
    conn.close();
  }
}

export const WRITE_STORM_INVARIANTS = ['no SQLITE_BUSY seen by a writer', 'converges to the final registry', ...NODE_INVARIANTS];

export async function runWriteStorm(j: Janitor, sizes: ChaosSizes, log: (m: string) => void): Promise<Tally> {
  const tally = new Tally('master write storm', WRITE_STORM_INVARIANTS);
  const node = j.node();
  // The registry exists before the first writer: `apply` of a first service creates it.
  const prefix = TestNode.serviceName('w').slice(0, 8);
  await node.apply(`name = "${prefix}a"\n[[components]]\nname = "x"\nruntime = "container"\nimage = "${IMAGE}"\ncmd = ["sleep", "2147483647"]\n`);
  const agent = node.startAgent();
  await waitFor('the agent heartbeat', async () => (await node.status()).agent.running, 30_000, 200);
  const writesPerWriter = Math.max(5, sizes.iterations * 10);
  const t0 = performance.now();
  let writes = 0;
  const writer = async (w: number): Promise<void> => {
    const rng = new Rng(sizes.seed * 31 + w);
    for (let i = 0; i < writesPerWriter; i++) {
      const sql = randomPush(rng, prefix);
      const r = await j.children.run('sqlite3', ['-bail', '-cmd', '.timeout 5000', node.db, sql], { timeoutMs: 60_000 });
      writes++;
      if (/SQLITE_BUSY|database is locked/i.test(r.stderr)) tally.violate('no SQLITE_BUSY seen by a writer', `writer ${w}: ${r.stderr.trim()}`);
      // A rejected write (a FOREIGN KEY on an upsert racing a delete) is a master's problem, not the agent's: counted.
      else if (r.code !== 0) tally.add('writes refused by a constraint');
      await sleep(rng.int(0, 30));
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  const stormSeconds = (performance.now() - t0) / 1000;
  tally.figure('writers', WRITERS);
  tally.figure('writes', writes);
  tally.figure('storm (s)', stormSeconds.toFixed(1));
  log(`  write storm: ${writes} writes in ${stormSeconds.toFixed(1)} s`);

  const desired = finalRegistry(node.db);
  tally.figure('components in the final registry', desired.size);
  const t1 = performance.now();
  const ok = await waitFor('convergence to the final registry', async () => {
    const ps = await podmanPs(node.agentId());
    const running = ps.filter((c) => c.State === 'running').map((c) => c.Names[0]!);
    const st = await node.status();
    return ps.length === desired.size && running.length === desired.size && running.every((w) => desired.has(w)) && st.components.every((r) => r.drift === 'in-sync');
  }, 120_000, 250).then(() => true, (err: Error) => (tally.violate('converges to the final registry', err.message), false));
  tally.figure('time to converge (s)', ok ? ((performance.now() - t1) / 1000).toFixed(1) : 'did not');
  process.kill(agent.pid!, 'SIGTERM');
  await Promise.race([agent, sleep(30_000)]);
  await node.cli(['run', '--once']);
  const status = JSON.parse(await node.ok(['status', '--json'])) as StatusJson;
  const sightings = new Sightings();
  await sightings.sample(node);
  await checkNodeAtRest(node, desired, tally, { everUsed: desired.keys(), sightings, status });
  return tally;
}
