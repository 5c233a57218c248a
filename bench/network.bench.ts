// Bridge networking cost on its own (a benchmark, not a test). Everything runs inside a network
// namespace this benchmark creates and deletes: the outer process makes the namespace and re-runs
// itself inside it with `ip netns exec`.
//
// (a) per-VM network setup: the agent's placement (IP lease in the registry, bridge check, rules
//     check, no other agent's TAP on the bridge, host key) + its TAP step (create, alias, enslave, up), for 50 VMs; baseline: bare `ip tuntap add`
//     + `ip link set master up` for 50 TAPs, same run.
// (b) the isolation rules: `netUp` on an existing bridge (idempotent reload) vs a bare `nft -f`.
// (c) a reconcile pass over 50 running VM components with a fake QEMU: `agent run --once` and
//     `agent status --json`, with the 50 VMs in bridge mode (the bridge check, each TAP checked to
//     be on the bridge, TAP collection) vs the same 50 declared and running in SLIRP mode (no TAPs). A fake QEMU cannot answer SSH, so the VMs are made
//     "running" the way the agent finds them after a restart: a state dir with its record and
//     `ready` mark, and a live process whose command line is the VM's (-name, -pidfile).
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { loadConfig, bridgeSettings, vmPaths } from '../src/config/config.js';
import { Registry } from '../src/registry/index.js';
import { placeVm } from '../src/agent/placement.js';
import { netUp, tapDown, tapUp } from '../src/net/host.js';
import { isolationRuleset, tapName } from '../src/net/plan.js';
import { loadManifestText } from '../src/manifest/load.js';
import { specHash, workloadName } from '../src/identity.js';
import { stateFiles } from '../src/runtime/qemu/args.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const N = 50;
const ROUNDS = 3;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => x.toFixed(1).padStart(8);

async function outer(): Promise<void> {
  const ns = `agtbench-${randomBytes(3).toString('hex')}`;
  const cleanup = (): void => void execa('ip', ['netns', 'del', ns], { reject: false });
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  await execa('ip', ['netns', 'add', ns]);
  try {
    await execa('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    await execa('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), '--inner'], { stdio: 'inherit', cwd: ROOT });
  } finally {
    await execa('ip', ['netns', 'del', ns], { reject: false });
    const left = (await execa('ip', ['netns', 'list'])).stdout;
    console.log(`network bench: namespace ${ns} deleted (${left.includes(ns) ? 'STILL LISTED' : 'gone'})`);
  }
}

async function inner(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-netbench-'));
  const fakes: number[] = [];
  try {
    // a node home: registry, images (host key only is needed), config with a fake QEMU
    mkdirSync(join(dir, 'images'));
    writeFileSync(join(dir, 'images/host_key.pub'), readFileSync(join(ROOT, 'var/images/host_key.pub')));
    writeFileSync(join(dir, 'images/id_ed25519'), readFileSync(join(ROOT, 'var/images/id_ed25519')), { mode: 0o600 });
    const fake = join(dir, 'fake-qemu');
    writeFileSync(fake, '#!/bin/sh\necho "QEMU emulator version 0.0 (fake for bench/network.bench.ts)"\n');
    chmodSync(fake, 0o755);
    const cfgFile = join(dir, 'agent.toml');
    writeFileSync(cfgFile, `db = "agent.db"\n[qemu]\nbinary = "${fake}"\naccel = "tcg"\n`);
    const cfg = loadConfig({ configPath: cfgFile, env: {}, flags: {}, cwd: dir });
    const net = bridgeSettings(cfg);
    const paths = vmPaths(cfg);
    const registry = Registry.open(cfg.db);

    // (b) rules: bare nft vs netUp (the bridge exists after the first netUp)
    await netUp(net);
    const rulesFile = join(dir, 'rules.nft');
    writeFileSync(rulesFile, isolationRuleset(net.bridge, net.gateway, net.table));
    const bareNft: number[] = [];
    const agentUp: number[] = [];
    for (let r = 0; r < 5; r++) {
      let t = performance.now();
      await execa('nft', ['-f', rulesFile]);
      bareNft.push(performance.now() - t);
      t = performance.now();
      await netUp(net);
      agentUp.push(performance.now() - t);
    }

    // (a) per-VM setup for N VMs, ROUNDS rounds; TAPs removed between rounds
    const names = Array.from({ length: N }, (_, i) => `bench-vm${i}`);
    const spec = (i: number) =>
      loadManifestText(`name = "bench"\n[[components]]\nname = "vm${i}"\nruntime = "unikernel"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = 128\nnetwork = "bridge"\n`, 'toml', 'bench').components[0]!;
    const specs = names.map((_, i) => spec(i));
    const barePer: number[] = [];
    const agentPer: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t = performance.now();
      for (const n of names) {
        const tap = `tb${r}${n.slice(-6)}`.slice(0, 15);
        await execa('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
        await execa('ip', ['link', 'set', 'dev', tap, 'master', net.bridge, 'up']);
      }
      barePer.push((performance.now() - t) / N);
      for (const n of names) await execa('ip', ['link', 'del', 'dev', `tb${r}${n.slice(-6)}`.slice(0, 15)]);
      t = performance.now();
      for (let i = 0; i < N; i++) {
        const key = { service: 'bench', component: `vm${i}` };
        const p = await placeVm(registry, paths, { bridge: net, subnet: cfg.net.subnet }, key, names[i]!, specs[i]!, { mode: 'bridge' });
        if (p.net.mode !== 'bridge') throw new Error('expected bridge mode');
        await tapUp(p.net.tap, net.bridge, `${registry.meta.agentId()}:${names[i]}`);
      }
      agentPer.push((performance.now() - t) / N);
      for (const n of names) await tapDown(tapName(n), `${registry.meta.agentId()}:${n}`);
      for (let i = 0; i < N; i++) registry.leases.releaseComponent({ service: 'bench', component: `vm${i}` });
    }

    // (c) reconcile over N running VMs, bridge vs SLIRP records
    // Each pass declares its mode: with the bridge present, `auto` VMs on SLIRP would be (rightly)
    // moved onto the bridge, which is not what this measures.
    const svc = (mode: string) => `name = "bench"\nruntime = "unikernel"\n` + names.map((_, i) => `[[components]]\nname = "vm${i}"\nkernel = "vmlinux"\ninitrd = "initrd.gz"\nmemory = 128\nnetwork = "${mode}"\n`).join('\n');
    const agentId = registry.meta.agentId();
    const cli = (args: string[]) => execa(process.execPath, [join(ROOT, 'bin/agent.js'), '--config', cfgFile, ...args], { reject: false, env: { AGENT_LOG_LEVEL: 'error' } });
    const passes: Record<'bridge' | 'slirp', { run: number[]; status: number[] }> = { bridge: { run: [], status: [] }, slirp: { run: [], status: [] } };
    for (const mode of ['slirp', 'bridge'] as const) {
      registry.desired.apply([loadManifestText(svc(mode), 'toml', 'bench')]);
      const desired = registry.desired.read().components;
      const pids: number[] = [];
      for (let i = 0; i < N; i++) {
        const c = desired[i]!;
        if (!c.valid) throw new Error(c.error);
        const name = workloadName({ service: c.service, component: c.component });
        const vmDir = join(paths.vmDir, name);
        mkdirSync(vmDir, { recursive: true });
        const f = stateFiles(vmDir);
        const ip = `10.99.0.${i + 2}`;
        const tap = tapName(name);
        if (mode === 'bridge') {
          await tapUp(tap, net.bridge, `${agentId}:${name}`);
          registry.leases.take('ip', ip, { service: c.service, component: c.component }, 'bridge');
        }
        // a process with the VM's command line, as the identity check reads it
        const child = spawn('python3', ['-c', 'import time; time.sleep(1e6)', '-name', `guest=${name},process=${name}`, '-pidfile', f.pidfile], { detached: true, stdio: 'ignore' });
        child.unref();
        pids.push(child.pid!);
        fakes.push(child.pid!);
        writeFileSync(f.pidfile, `${child.pid}\n`);
        writeFileSync(f.ready, 'bench\n');
        writeFileSync(f.console, '');
        writeFileSync(f.spec, JSON.stringify({
          agentId, name, service: c.service, component: c.component, specHash: specHash(c.spec),
          sshHost: mode === 'bridge' ? ip : '127.0.0.1', sshPort: mode === 'bridge' ? 22 : 10022 + i, netMode: mode,
          ...(mode === 'bridge' ? { tap, bridge: net.bridge } : {}), hostKey: 'ssh-ed25519 AAAA', sshUser: 'root',
          address: mode === 'bridge' ? ip : `127.0.0.1:${10022 + i}`, args: [], launchedAt: new Date().toISOString(),
        }));
      }
      const first = await cli(['run', '--once']); // adopts the 50 (records them), then steady state
      if (first.exitCode !== 0) throw new Error(`run --once: ${first.stderr}`);
      const check = JSON.parse((await cli(['status', '--json'])).stdout) as { summary: Record<string, number> };
      if (check.summary['in-sync'] !== N) throw new Error(`expected ${N} in sync, got ${JSON.stringify(check.summary)}`);
      for (let r = 0; r < 5; r++) {
        let t = performance.now();
        await cli(['run', '--once']);
        passes[mode].run.push(performance.now() - t);
        t = performance.now();
        await cli(['status', '--json']);
        passes[mode].status.push(performance.now() - t);
      }
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      rmSync(paths.vmDir, { recursive: true, force: true });
      for (let i = 0; i < N; i++) {
        const name = workloadName({ service: 'bench', component: `vm${i}` });
        await tapDown(tapName(name), `${agentId}:${name}`);
      }
      for (let i = 0; i < N; i++) registry.leases.releaseComponent({ service: 'bench', component: `vm${i}` });
    }
    registry.close();

    const rows: Array<[string, number]> = [
      ['bare nft -f (rules)', median(bareNft)],
      ['agent netUp (rules, bridge exists)', median(agentUp)],
      ['bare TAP (tuntap add + master up), per VM', median(barePer)],
      ['agent placement + TAP, per VM', median(agentPer)],
      ['run --once, 50 VMs, SLIRP', median(passes.slirp.run)],
      ['run --once, 50 VMs, bridge', median(passes.bridge.run)],
      ['status --json, 50 VMs, SLIRP', median(passes.slirp.status)],
      ['status --json, 50 VMs, bridge', median(passes.bridge.status)],
    ];
    console.log(`network benchmark: inside a test namespace, ${N} VMs, ${ROUNDS} setup rounds, 5 rounds otherwise; medians in ms`);
    for (const [k, v] of rows) console.log(`${k.padEnd(46)}${ms(v)}`);
    const ratios = {
      rules_agent_over_bare: median(agentUp) / median(bareNft),
      setup_agent_over_bare_tap: median(agentPer) / median(barePer),
      run_once_bridge_over_slirp: median(passes.bridge.run) / median(passes.slirp.run),
      status_bridge_over_slirp: median(passes.bridge.status) / median(passes.slirp.status),
    };
    for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(46)}${v.toFixed(2).padStart(8)}`);
    console.log(JSON.stringify({ bench: 'network', vms: N, medians_ms: Object.fromEntries(rows), ratios, samples: { bareNft, agentUp, barePer, agentPer, passes } }));
  } finally {
    for (const pid of fakes) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await (process.argv.includes('--inner') ? inner() : outer());
