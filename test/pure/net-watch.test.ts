// concernsAgent (pure): which lines of `nft monitor` and `ip -o monitor link` wake the loop.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { concernsAgent } from '../../src/net/watch.js';

const yes = (line: string) => assert.equal(concernsAgent(line, 'mcp-br0', 'mcp'), true, line);
const no = (line: string) => assert.equal(concernsAgent(line, 'mcp-br0', 'mcp'), false, line);

describe('concernsAgent', () => {
  it('wakes on changes to the agent tables (what nft monitor prints on a flush or a deleted rule)', () => {
    yes('delete table inet mcp');
    yes('delete rule bridge mcp forward handle 2');
    yes('delete rule inet mcp forward handle 6');
    yes('add table inet mcp');
  });
  it('wakes on the bridge and on agent TAPs (what ip -o monitor link prints)', () => {
    yes('Deleted 2: mcp-br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN');
    yes('3: tap-0123456789a: <BROADCAST,MULTICAST> mtu 1500 master mcp-br0 state DOWN');
    yes('7: tap-0123456789a: <NO-CARRIER> mtu 1500 qdisc noop state DOWN');
  });
  it('ignores other tables, other links and lookalike names', () => {
    no('delete table inet mcpx');
    no('delete table inet filter');
    no('add rule ip nat postrouting masquerade');
    no('4: eth0: <BROADCAST,MULTICAST,UP> mtu 1500 state UP');
    no('5: mcp-br01: <BROADCAST> mtu 1500 state DOWN');
    no('# new generation 3 by process 7637 (nft)');
  });
});
