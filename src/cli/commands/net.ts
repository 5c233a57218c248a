/** `agent net up|down|status`: the host-only VM bridge and its isolation rules. */
import { Command } from 'commander';
import { bridgeSettings } from '../../config/config.js';
import { buildHostNet } from '../compose.js';
import { print, settings } from '../common.js';

export function netCommand(): Command {
  const net = new Command('net').description('the host-only bridge for VMs and its isolation rules (nftables)');
  net
    .command('up')
    .description('create (idempotently) the bridge with the gateway address and load the isolation rules')
    .action(async (_o: unknown, cmd: Command) => {
      for (const line of await buildHostNet().up(bridgeSettings(settings(cmd)))) print(line);
    });
  net
    .command('down')
    .description('remove the isolation rules, and the bridge if the agent created it')
    .action(async (_o: unknown, cmd: Command) => {
      for (const line of await buildHostNet().down(bridgeSettings(settings(cmd)))) print(line);
    });
  net
    .command('status')
    .description('whether the bridge exists, the isolation rules are in place, and whose VMs are on it (exit 1 when the rules are missing or several agents share it)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const s = await buildHostNet().status(bridgeSettings(settings(cmd)));
      if (opts.json) return print(JSON.stringify(s, null, 2));
      const b = s.bridge;
      print(`bridge: ${b.name} ${b.present ? `present${b.created_by_agent ? ' (created by the agent)' : ''}, ${b.up ? 'up' : 'down'}, ${b.address ?? 'no address'}` : 'absent (VMs with network auto use SLIRP)'}`);
      print(`rules:  ${s.rules.detail}`);
      const agents = Object.entries(s.agents);
      if (b.present) print(`VMs:    ${agents.length === 0 ? 'none' : agents.map(([id, n]) => `${n} of agent ${id}`).join(', ')}${agents.length > 1 ? ' (shared by several agents: their addresses may collide; agents keep new VMs off it)' : ''}`);
      if (b.present && (!s.rules.loaded || agents.length > 1)) process.exitCode = 1;
    });
  return net;
}
