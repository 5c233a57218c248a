/**
 * One process of simulated node watchers for bench/nats.bench.ts: argv `URL BUCKET FIRST COUNT`.
 * Each simulated node has its own connection and watches its own `desired.<node>.>` prefix, as an
 * agent does; it prints `ready` once every watch is set up, then `got <node> <epoch ms>` the
 * first time its value arrives, and exits when its parent closes stdin.
 */
import { connect, type NatsConnection } from 'nats';
import { desiredFilter } from '../../src/nats/keys.js';

const [url, bucket, firstText, countText] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
const conns: NatsConnection[] = [];

async function watcher(i: number): Promise<void> {
  const node = `n${i}`;
  const nc = await connect({ servers: url!, name: `bench-${node}` });
  conns.push(nc);
  const kv = await nc.jetstream().views.kv(bucket!, { bindOnly: true });
  const iter = await kv.watch({ key: desiredFilter(node) });
  void (async () => {
    for await (const e of iter) {
      if (e.operation !== 'PUT') continue;
      process.stdout.write(`got ${node} ${Date.now()}\n`);
      break;
    }
  })();
}

await Promise.all(Array.from({ length: count }, (_, k) => watcher(first + k)));
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => void Promise.all(conns.map((c) => c.close())).then(() => process.exit(0)));
