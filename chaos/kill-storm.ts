/**
 * Scenario 1, the kill -9 storm: `agent run` is killed with SIGKILL at a random moment, over and
 * over, while the desired state changes between kills (env and memory changes that force a
 * replace, components and whole services deleted and added back), for containers and SLIRP VMs.
 * Then one agent runs to convergence, stops, a last `run --once` runs, and the shared checker
 * looks at everything left: one workload per desired component and nothing else, anywhere.
 */
import { performance } from 'node:perf_hooks';
import { IMAGE, TestNode, waitFor, type StatusJson } from '../test/helpers/agent.js';
import { Rng, sleep, type ChaosSizes } from './lib/config.js';
import { checkNodeAtRest, NODE_INVARIANTS, type Desired } from './lib/invariants.js';
import { Sightings } from './lib/observe.js';
import { Tally } from './lib/report.js';
import type { Janitor } from './lib/janitor.js';

interface CompModel {
  runtime: 'container' | 'unikernel';
  memory: number;
  version: number;
}

type Model = Map<string, Map<string, CompModel>>;

function manifest(service: string, comps: Map<string, CompModel>): string {
  let out = `name = "${service}"\n`;
  for (const [name, c] of comps) {
    out += `\n[[components]]\nname = "${name}"\nruntime = "${c.runtime}"\nmemory = ${c.memory}\n`;
    if (c.runtime === 'container') out += `image = "${IMAGE}"\ncmd = ["sleep", "2147483647"]\nenv = { VERSION = "${c.version}" }\n`;
    else out += `kernel = "vmlinux"\ninitrd = "initrd.gz"\nnetwork = "slirp"\ncmdline = "chaos.version=${c.version}"\n`;
  }
  return out;
}

function desiredOf(model: Model): Desired {
  const d: Desired = new Map();
  for (const [service, comps] of model) for (const [component, c] of comps) d.set(`${service}-${component}`, { service, component, runtime: c.runtime });
  return d;
}

export const KILL_STORM_INVARIANTS = [...NODE_INVARIANTS, 'converges after the storm', 'agent stops on SIGTERM'];

export async function runKillStorm(j: Janitor, sizes: ChaosSizes, log: (m: string) => void): Promise<Tally> {
  const tally = new Tally('kill -9 storm', KILL_STORM_INVARIANTS);
  const rng = new Rng(sizes.seed);
  const node = j.node();
  if (sizes.vms > 0) node.useGuestImages();
  const cs = TestNode.serviceName('kc');
  const vs = TestNode.serviceName('kv');
  // The full catalogue; `model` is what is desired now, `removed` what was taken out of it.
  const full: Model = new Map([[cs, new Map(['a', 'b', 'c'].map((n) => [n, { runtime: 'container', memory: 64, version: 0 } as CompModel]))]]);
  if (sizes.vms > 0) full.set(vs, new Map(Array.from({ length: sizes.vms }, (_, i) => [`v${i}`, { runtime: 'unikernel', memory: 128, version: 0 } as CompModel])));
  const model: Model = new Map([...full].map(([s, c]) => [s, new Map(c)]));
  const everUsed = new Set(desiredOf(full).keys());
  const sightings = new Sightings();
  const push = async (service: string): Promise<void> => {
    const comps = model.get(service);
    if (comps && comps.size > 0) await node.apply(manifest(service, comps), `${service}.toml`);
    else await node.ok(['delete', service]);
  };
  for (const s of model.keys()) await push(s);

  const mutations: Record<string, () => Promise<string>> = {
    'spec change': async () => {
      const [s, comps] = rng.pick([...model].filter(([, c]) => c.size > 0));
      const [name, c] = rng.pick([...comps]);
      if (rng.chance(0.5)) c.version++;
      else c.memory = c.runtime === 'unikernel' ? (c.memory === 128 ? 144 : 128) : c.memory === 64 ? 96 : 64;
      await push(s);
      return `${s}/${name} changed`;
    },
    'delete component': async () => {
      const [s, comps] = rng.pick([...model].filter(([, c]) => c.size > 1));
      const name = rng.pick([...comps.keys()]);
      comps.delete(name);
      await push(s);
      return `${s}/${name} deleted`;
    },
    're-add component': async () => {
      const [s, comps] = rng.pick([...model].filter(([s2, c]) => c.size < full.get(s2)!.size));
      const [name, c] = rng.pick([...full.get(s)!].filter(([n]) => !comps.has(n)));
      comps.set(name, { ...c });
      await push(s);
      return `${s}/${name} re-added`;
    },
    'delete service': async () => {
      const s = rng.pick([...model.keys()]);
      model.delete(s);
      await node.ok(['delete', s]);
      return `${s} deleted`;
    },
    're-add service': async () => {
      const s = rng.pick([...full.keys()].filter((x) => !model.has(x)));
      model.set(s, new Map([...full.get(s)!].map(([n, c]) => [n, { ...c }])));
      await push(s);
      return `${s} re-added`;
    },
  };
  const possible = (name: string): boolean => {
    if (name === 'spec change') return [...model.values()].some((c) => c.size > 0);
    if (name === 'delete component') return [...model.values()].some((c) => c.size > 1);
    if (name === 're-add component') return [...model].some(([s, c]) => c.size < full.get(s)!.size);
    if (name === 'delete service') return model.size > 1;
    return model.size < full.size;
  };

  let kills = 0;
  for (let i = 0; i < sizes.iterations; i++) {
    const n = rng.int(1, 2);
    for (let k = 0; k < n; k++) {
      const name = rng.pick(Object.keys(mutations).filter(possible));
      tally.add(`mutation: ${name}`);
      await mutations[name]!();
    }
    const agent = node.startAgent();
    // Up to one VM boot: kills land before, during and after the actions a pass issues.
    await sleep(rng.int(50, sizes.vms > 0 ? 4500 : 2500));
    process.kill(agent.pid!, 'SIGKILL');
    await agent;
    kills++;
    await sightings.sample(node);
    if ((i + 1) % 10 === 0) log(`  kill storm: ${i + 1}/${sizes.iterations} kills`);
  }
  tally.figure('iterations', sizes.iterations);
  tally.figure('kills (SIGKILL)', kills);
  tally.figure('VMs', sizes.vms);

  const desired = desiredOf(model);
  const t0 = performance.now();
  const agent = node.startAgent();
  const converged = await waitFor('convergence', async () => {
    const st = await node.status();
    return st.components.length === desired.size && st.components.every((r) => r.drift === 'in-sync' && desired.has(r.workload));
  }, 120_000, 250).then(() => true, (err: Error) => (tally.violate('converges after the storm', err.message), false));
  tally.figure('time to converge (s)', converged ? ((performance.now() - t0) / 1000).toFixed(1) : 'did not');
  process.kill(agent.pid!, 'SIGTERM');
  const stopped = await Promise.race([agent.then(() => true), sleep(30_000).then(() => false)]);
  if (!stopped) {
    tally.violate('agent stops on SIGTERM', 'still running 30 s after SIGTERM');
    process.kill(agent.pid!, 'SIGKILL');
    await agent;
  }
  await node.cli(['run', '--once']);
  const status = JSON.parse(await node.ok(['status', '--json'])) as StatusJson;
  await sightings.sample(node);
  tally.figure('workload starts seen from outside', sightings.byHandle.size);
  await checkNodeAtRest(node, desired, tally, { everUsed, sightings, status });
  return tally;
}
