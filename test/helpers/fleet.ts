// A test fleet: a "master" network namespace holding a bridge, and one namespace per node joined
// to it by a veth, each node running a real OpenSSH sshd (its own host key, an authorized_keys
// with the test's master key) and its own registry (a TestNode). Every `agent fleet …` runs
// inside the master namespace, so no test traffic leaves its namespaces. cleanup() stops each
// sshd by its pidfile and deletes the namespaces, keys and files, even after a failure.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { BIN, ROOT, TestNode, type CliResult } from './agent.js';

export interface LabNode {
  name: string;
  address: string;
  netns: string;
  dir: string;
  /** The node's registry, for plain `agent apply` and checks (runs in the main namespace: local files only). */
  agent: TestNode;
  hostKeyLine: string;
  sshdPidfile: string;
  sshdLog: string;
}

const sh = async (cmd: string, args: string[]): Promise<void> => {
  await execa(cmd, args, { stdin: 'ignore' });
};

export class FleetLab {
  readonly id = randomBytes(3).toString('hex');
  readonly dir = mkdtempSync(join(tmpdir(), 'agent-fleet-'));
  readonly masterNs = `fm-${this.id}`;
  readonly nodes: LabNode[] = [];
  readonly masterKey = join(this.dir, 'master_key');
  private readonly subnet = `10.${200 + (parseInt(this.id.slice(0, 2), 16) % 50)}.${parseInt(this.id.slice(2, 4), 16)}`;
  private readonly namespaces: string[] = [];

  /** Builds the master namespace and `names.length` nodes with sshd each. */
  static async create(names: string[]): Promise<FleetLab> {
    const lab = new FleetLab();
    try {
      await lab.build(names);
    } catch (err) {
      await lab.cleanup();
      throw err;
    }
    return lab;
  }

  private async build(names: string[]): Promise<void> {
    await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleet-test-master', '-f', this.masterKey]);
    const m = this.masterNs;
    await sh('ip', ['netns', 'add', m]);
    this.namespaces.push(m);
    await sh('ip', ['-n', m, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', m, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', m, 'addr', 'add', `${this.subnet}.1/24`, 'dev', 'br0']);
    await sh('ip', ['-n', m, 'link', 'set', 'br0', 'up']);
    mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
    for (const [i, name] of names.entries()) await this.addNode(name, i);
  }

  private async addNode(name: string, i: number): Promise<void> {
    const netns = `fn-${this.id}-${name}`;
    const address = `${this.subnet}.${10 + i}`;
    const dir = join(this.dir, name);
    mkdirSync(dir);
    await sh('ip', ['netns', 'add', netns]);
    this.namespaces.push(netns);
    await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', this.masterNs, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await sh('ip', ['-n', this.masterNs, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
    await sh('ip', ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `host-${name}`, '-f', hostKey]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${this.masterKey}.pub`));
    const node: LabNode = {
      name,
      address,
      netns,
      dir,
      agent: new TestNode(),
      hostKeyLine: readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' '),
      sshdPidfile: join(dir, 'sshd.pid'),
      sshdLog: join(dir, 'sshd.log'),
    };
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        'Port 22',
        `ListenAddress ${address}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'LogLevel VERBOSE',
        `PidFile ${node.sshdPidfile}`,
        '',
      ].join('\n'),
    );
    this.nodes.push(node); // before sshd starts: cleanup() then stops it whatever happens next
    await this.startSshd(node);
  }

  async startSshd(node: LabNode): Promise<void> {
    await sh('ip', ['netns', 'exec', node.netns, '/usr/sbin/sshd', '-f', join(node.dir, 'sshd_config'), '-E', node.sshdLog]);
    const deadline = Date.now() + 10_000;
    while (!existsSync(node.sshdPidfile)) {
      if (Date.now() > deadline) throw new Error(`sshd of node ${node.name} wrote no pidfile: ${readFileSync(node.sshdLog, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Ends this node's sshd by its pidfile (and waits until it is gone). */
  async stopSshd(node: LabNode): Promise<void> {
    if (!existsSync(node.sshdPidfile)) return;
    const pid = Number(readFileSync(node.sshdPidfile, 'utf8').trim());
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const deadline = Date.now() + 10_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    rmSync(node.sshdPidfile, { force: true });
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  /** The remote command each node runs: this checkout's CLI on the node's registry. */
  agentArgv(n: LabNode): string[] {
    return ['node', BIN, '--db', n.agent.db];
  }

  /** An inventory (TOML) for the lab's nodes; `edit` may change each node's table before it is written. */
  writeInventory(opts: { labels?: Record<string, Record<string, string>>; hostKey?: Record<string, string>; agent?: Record<string, string[]>; extra?: string; file?: string } = {}): string {
    const file = join(this.dir, opts.file ?? 'inventory.toml');
    const q = (s: string): string => JSON.stringify(s);
    const lines = ['[defaults]', `key = ${q('master_key')}`, ''];
    for (const n of this.nodes) {
      const labels = Object.entries(opts.labels?.[n.name] ?? {}).map(([k, v]) => `${k} = ${q(v)}`).join(', ');
      lines.push(
        '[[nodes]]',
        `name = ${q(n.name)}`,
        `host = ${q(n.address)}`,
        `host_key = ${q(opts.hostKey?.[n.name] ?? n.hostKeyLine)}`,
        `agent = [${(opts.agent?.[n.name] ?? this.agentArgv(n)).map(q).join(', ')}]`,
        `labels = { ${labels} }`,
        '',
      );
    }
    if (opts.extra) lines.push(opts.extra);
    writeFileSync(file, lines.join('\n'));
    return file;
  }

  /** `agent fleet ARGS` inside the master namespace. */
  async fleet(args: string[]): Promise<CliResult> {
    const r = await execa('ip', ['netns', 'exec', this.masterNs, 'node', BIN, 'fleet', ...args], { reject: false, stdin: 'ignore', timeout: 180_000, cwd: ROOT });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  async cleanup(): Promise<void> {
    for (const n of this.nodes) {
      await this.stopSshd(n).catch(() => undefined);
      await n.agent.cleanup().catch(() => undefined);
    }
    for (const ns of this.namespaces.reverse()) await execa('ip', ['netns', 'delete', ns], { reject: false });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
