/**
 * Part (a) of bench/nats.bench.ts: one change of a service's manifest, pushed to a real node, timed
 * from "change issued" to the podman `start` event of the replacement container, three ways in the
 * same run, interleaved (order rotated each round):
 *   - nats-put:   a kv.put of desired.<node>.<service> from a client already connected (a master
 *                 that keeps its connection); a real `agent run` watches the bucket (source.nats)
 *   - nats-fleet: `agent fleet apply --nats URL -f DIR` (a CLI process: start, connect, read the
 *                 revision, conditional put) to the same node
 *   - ssh-fleet:  `agent fleet apply -i INV -f DIR` over SSH, run in the lab's master namespace, to
 *                 a node with a real sshd in its own namespace (test/helpers/fleet.ts) whose
 *                 registry a real `agent run` watches
 * Each change is a new env value (NB_ROUND), so the container is replaced. Measured from outside,
 * as a user would: podman's event log (`podman events`, podman's own timestamps), then checked
 * (outside the timed region) by `podman inspect` (the new env value) and cross-checked with the
 * node's registry: when the service row was written (delivery) and when the agent's replace
 * action began (its events log).
 * Both agents run in the main namespace (they talk only to local podman, SQLite and the loopback
 * NATS server); names start with "nb". cleanup() ends what this part started and removes every
 * container (the TestNodes' cleanup, by their agent label), the namespaces and the temp dirs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, type KV, type NatsConnection } from 'nats';
import { BIN, IMAGE, TestNode, waitFor } from '../../test/helpers/agent.js';
import { FleetLab } from '../../test/helpers/fleet.js';
import { NatsServer } from '../../test/helpers/nats-server.js';
import { desiredKey } from '../../src/nats/keys.js';
import type { ChildTracker } from './children.js';
import { nowMs, PodmanEventTap } from './events.js';

export type PushProbe = 'nats-put' | 'nats-fleet' | 'ssh-fleet';
export const PUSH_PROBES: PushProbe[] = ['nats-put', 'nats-fleet', 'ssh-fleet'];

/** One probe's timings, epoch-ms differences. */
export interface PushSample {
  /** issued -> podman's start event of the new container */
  total: number;
  /** issued -> the registry's service row written (the change delivered) */
  delivered: number;
  /** the row written -> podman's start event (the agent's reaction and podman) */
  reconcile: number;
  /** the agent's replace action began (its events log) -> podman's start event */
  actionToStart: number;
}

const id = randomBytes(3).toString('hex');
const log = (msg: string): void => void process.stderr.write(`nats bench (a): ${msg}\n`);

export class PushBench {
  private readonly scratch = mkdtempSync(join(tmpdir(), 'nb-push-'));
  private server: NatsServer | undefined;
  private nc: NatsConnection | undefined;
  private labPending: Promise<FleetLab> | undefined;
  private natsNode: TestNode | undefined;
  private tap = new PodmanEventTap([`nb${id}`]);
  private cleaning: Promise<void> | undefined;

  constructor(private readonly children: ChildTracker) {}

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      this.tap.stop();
      await this.nc?.close().catch(() => undefined);
      await this.natsNode?.cleanup().catch(() => undefined);
      const lab = await this.labPending?.catch(() => undefined); // a failed create cleaned itself up
      await lab?.cleanup().catch(() => undefined);
      await this.server?.cleanup().catch(() => undefined);
      rmSync(this.scratch, { recursive: true, force: true });
    })();
    return this.cleaning;
  }

  async run(rounds: number): Promise<Record<PushProbe, PushSample[]>> {
    const natsName = `nbn${id}`;
    const bucket = `nb-${id}`;
    const svcNats = `nb${id}n`;
    const svcSsh = `nb${id}s`;
    this.server = await NatsServer.start();
    this.nc = await connect({ servers: this.server.url });
    const kv = await this.nc.jetstream().views.kv(bucket, { history: 5 });
    log(`nats-server ${this.server.url}; building the SSH lab (a master and one node namespace)`);
    this.labPending = FleetLab.create(['nbs']);
    const lab = await this.labPending;
    const sshNode = lab.nodes[0]!;
    const sshInv = lab.writeInventory();
    const natsNode = (this.natsNode = new TestNode());
    const config = join(natsNode.dir, 'agent.toml');
    writeFileSync(config, `[source.nats]\nurls = ${JSON.stringify([this.server.url])}\nbucket = "${bucket}"\nnode = "${natsName}"\n`);
    const natsInv = join(this.scratch, 'inventory.toml');
    writeFileSync(natsInv, `[[nodes]]\nname = "${natsName}"\nlabels = {}\n`);

    await this.tap.start(this.children, process.env);
    natsNode.startAgent({ AGENT_CONFIG: config, AGENT_LOG_LEVEL: 'info' });
    sshNode.agent.startAgent({ AGENT_LOG_LEVEL: 'info' });
    // `agent run` creates each registry; the probes read them.
    for (const n of [natsNode, sshNode.agent]) await waitFor(`the registry ${n.db}`, async () => n.query('SELECT 1 FROM events LIMIT 1') && true, 30_000);

    const dirNats = join(this.scratch, 'desired-nats');
    const dirSsh = join(this.scratch, 'desired-ssh');
    mkdirSync(dirNats);
    mkdirSync(dirSsh);
    const manifest = (name: string, round: string): Record<string, unknown> => ({
      name,
      comment: 'nats bench (a); removed at the end',
      components: [{ name: 'c', runtime: 'container', image: IMAGE, cmd: ['sleep', '600'], env: { NB_ROUND: round } }],
    });
    const write = (dir: string, name: string, node: string, round: string): void =>
      writeFileSync(join(dir, `${name}.json`), JSON.stringify({ ...manifest(name, round), nodes: [node] }, null, 2));

    const push: Record<PushProbe, (round: string) => Promise<void>> = {
      'nats-put': async (round) => {
        await kv.put(desiredKey(natsName, svcNats), JSON.stringify(manifest(svcNats, round)));
      },
      'nats-fleet': async (round) => {
        write(dirNats, svcNats, natsName, round);
        const r = await this.children.must('node', [BIN, 'fleet', 'apply', '--nats', this.server!.url, '--bucket', bucket, '-i', natsInv, '-f', dirNats], 60_000);
        if (!/(created|updated) 1/.test(r.stdout)) throw new Error(`fleet apply --nats did not update ${svcNats}: ${r.stdout}`);
      },
      'ssh-fleet': async (round) => {
        write(dirSsh, svcSsh, 'nbs', round);
        const r = await this.children.must('ip', ['netns', 'exec', lab.masterNs, 'node', BIN, 'fleet', 'apply', '-i', sshInv, '-f', dirSsh], 60_000);
        if (!/(created|updated) 1/.test(r.stdout)) throw new Error(`fleet apply over SSH did not update ${svcSsh}: ${r.stdout}`);
      },
    };
    const target: Record<PushProbe, { node: TestNode; svc: string }> = {
      'nats-put': { node: natsNode, svc: svcNats },
      'nats-fleet': { node: natsNode, svc: svcNats },
      'ssh-fleet': { node: sshNode.agent, svc: svcSsh },
    };

    /** One change, timed from issue to the new container's start event; then checked and cross-checked. */
    const probe = async (p: PushProbe, round: string): Promise<PushSample> => {
      const { node, svc } = target[p];
      const container = `${svc}-c`;
      const lastEvent = node.query<{ id: number }>('SELECT coalesce(max(id), 0) AS id FROM events')[0]!.id;
      const issued = nowMs();
      await push[p](round);
      const started = await this.tap.next(container, 'start', issued, 90_000);
      // Checks, outside the timed part: the container runs the new value; the registry's view.
      const env = await this.children.must('podman', ['inspect', '--format', '{{range .Config.Env}}{{println .}}{{end}}', container], 30_000);
      if (!env.stdout.split('\n').includes(`NB_ROUND=${round}`)) throw new Error(`${p}: ${container} started without NB_ROUND=${round}`);
      const written = Date.parse(node.query<{ updated_at: string }>('SELECT updated_at FROM services WHERE name = ?', svc)[0]!.updated_at);
      let action: { at: string } | undefined;
      for (let i = 0; i < 100 && !action; i++) {
        action = node.query<{ at: string }>("SELECT at FROM events WHERE id > ? AND workload = ? AND action IN ('replace', 'start') AND outcome = 'ok' ORDER BY id LIMIT 1", lastEvent, container)[0];
        if (!action) await new Promise((r) => setTimeout(r, 100));
      }
      if (!action) throw new Error(`${p}: no settled replace/start of ${container} in the node's events log`);
      return { total: started.at - issued, delivered: written - issued, reconcile: started.at - written, actionToStart: started.at - Date.parse(action.at) };
    };

    // Warm-up, not counted: both services created, the bucket's first keys written.
    log('warm-up: creating both services');
    await probe('nats-fleet', 'w0');
    await probe('ssh-fleet', 'w0');
    await probe('nats-put', 'w1');
    const out: Record<PushProbe, PushSample[]> = { 'nats-put': [], 'nats-fleet': [], 'ssh-fleet': [] };
    for (let r = 0; r < rounds; r++) {
      const order = PUSH_PROBES.map((_, i) => PUSH_PROBES[(i + r) % PUSH_PROBES.length]!);
      for (const p of order) {
        const s = await probe(p, `r${r}-${p}`);
        out[p].push(s);
        log(`round ${r + 1}/${rounds} ${p}: ${Math.round(s.total)} ms (delivered ${Math.round(s.delivered)}, reconcile ${Math.round(s.reconcile)})`);
      }
    }
    return out;
  }
}
