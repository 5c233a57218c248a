// Runs one host networking step of src/net/host.ts in this process's network namespace and prints
// its outcome as JSON: tests run it under `ip netns exec` so the step never touches the host's links.
import { bridgeExists, netDown, netUp, tapDown, tapUp } from '../../src/net/host.js';

const [step, ...args] = process.argv.slice(2);
try {
  if (step === 'bridgeExists') console.log(JSON.stringify({ ok: true, value: await bridgeExists(args[0]!) }));
  else if (step === 'tapUp') console.log(JSON.stringify({ ok: true, value: await tapUp(args[0]!, args[1]!, args[2]!) }));
  else if (step === 'tapDown') console.log(JSON.stringify({ ok: true, value: await tapDown(args[0]!, args[1]!) }));
  else if (step === 'netUp' || step === 'netDown') {
    // args: bridge gateway prefix table
    const settings = { bridge: args[0]!, gateway: args[1]!, prefix: Number(args[2]), table: args[3]! };
    console.log(JSON.stringify({ ok: true, value: await (step === 'netUp' ? netUp : netDown)(settings) }));
  } else throw new Error(`unknown step ${step}`);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: (err as Error).message }));
}
