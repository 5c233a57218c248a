// A VM's state directory and process checks; pinning the guest's SSH host key.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveHostKey } from '../../src/agent/placement.js';
import { RuntimeError } from '../../src/errors.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';
import { stateFiles } from '../../src/runtime/qemu/args.js';
import { consoleTail, isOurVm, livePid, processLive, readPid, readRecord, type VmRecord } from '../../src/runtime/qemu/state.js';
import { keyBlob } from '../../src/runtime/ssh.js';

/** Above PID_MAX_LIMIT (2^22): no process can have it. */
const NO_SUCH_PID = 4_194_304 + 7;

let root: string;
let n = 0;
/** A fresh, empty directory under the test root. */
function dir(): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'vm-state-test-'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const record: VmRecord = {
  agentId: 'node-1',
  name: 'web-vm',
  service: 'web',
  component: 'vm',
  specHash: 'f'.repeat(64),
  sshHost: '127.0.0.1',
  sshPort: 10042,
  netMode: 'slirp',
  hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5',
  sshUser: 'root',
  address: '127.0.0.1',
  args: ['-name', 'guest=web-vm'],
  launchedAt: '2024-01-01T00:00:00.000Z',
};

describe('readRecord', () => {
  it('undefined for a missing directory or file', () => {
    assert.equal(readRecord(join(root, 'nope')), undefined);
    assert.equal(readRecord(dir()), undefined);
  });

  it('undefined for garbage and for JSON that is not a record', () => {
    for (const text of ['garbage', '', '{', 'null', '[]', '42', JSON.stringify({ ...record, sshPort: '10042' }), JSON.stringify({ ...record, args: undefined })]) {
      const d = dir();
      writeFileSync(stateFiles(d).spec, text);
      assert.equal(readRecord(d), undefined, text);
    }
  });

  it('the record for a valid spec.json', () => {
    const d = dir();
    writeFileSync(stateFiles(d).spec, JSON.stringify(record));
    assert.deepEqual(readRecord(d), record);
  });
});

describe('readPid', () => {
  const pidOf = (text: string | undefined): number | undefined => {
    const d = dir();
    if (text !== undefined) writeFileSync(stateFiles(d).pidfile, text);
    return readPid(d);
  };

  it('parses the pidfile QEMU writes', () => {
    assert.equal(pidOf('12345\n'), 12345);
    assert.equal(pidOf('  42  '), 42);
    assert.equal(pidOf('2'), 2);
  });

  it('undefined for a missing, empty or bad pidfile, and for pids 0 and 1', () => {
    for (const t of [undefined, '', '\n', 'abc', '12a', '3.5', '-5', '0', '1', '12 34']) assert.equal(pidOf(t), undefined, JSON.stringify(t));
  });
});

describe('consoleTail', () => {
  it('drops CRs and keeps the last N lines', () => {
    const d = dir();
    writeFileSync(stateFiles(d).console, 'SeaBIOS\r\nBooting\r\nline 3\r\nlogin:\r\n\r\n');
    assert.equal(consoleTail(d, 2), 'line 3\nlogin:');
    assert.equal(consoleTail(d, 10), 'SeaBIOS\nBooting\nline 3\nlogin:');
    assert.ok(!consoleTail(d).includes('\r'));
  });

  it('keeps 15 lines by default', () => {
    const d = dir();
    writeFileSync(stateFiles(d).console, Array.from({ length: 40 }, (_, i) => `l${i}`).join('\n') + '\n');
    const tail = consoleTail(d).split('\n');
    assert.equal(tail.length, 15);
    assert.equal(tail[0], 'l25');
    assert.equal(tail.at(-1), 'l39');
  });

  it('says so when there is no console log', () => {
    assert.equal(consoleTail(dir()), '(no console output)');
  });
});

describe('processLive, isOurVm, livePid', () => {
  it('this process is live; a pid that cannot exist is not', () => {
    assert.equal(processLive(process.pid), true);
    assert.equal(processLive(NO_SUCH_PID), false);
  });

  it('a zombie (exited, not yet reaped) is not live', async () => {
    // sh starts a child that exits after 0.3 s, prints its pid, then becomes `sleep 30`, which never
    // reaps it (the delay makes sure sh has exec'd before the child exits, so sh cannot reap it).
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = await new Promise<number>((resolve, reject) => {
        parent.stdout!.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
        parent.once('error', reject);
      });
      assert.ok(Number.isInteger(zombie) && zombie > 1, `pid ${zombie}`);
      let state = '';
      for (let i = 0; i < 250 && state !== 'Z'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const stat = readFileSync(`/proc/${zombie}/stat`, 'utf8');
        state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      }
      assert.equal(state, 'Z', 'the child became a zombie');
      assert.equal(processLive(zombie), false);
      assert.equal(processLive(parent.pid!), true, 'its parent is live');
    } finally {
      const gone = new Promise((resolve) => parent.once('exit', resolve));
      parent.kill('SIGKILL');
      await gone;
    }
  });

  it("this test's own process is not our VM (no -name guest=...)", () => {
    const d = dir();
    writeFileSync(stateFiles(d).pidfile, `${process.pid}\n`);
    assert.equal(isOurVm(process.pid, 'web-vm', d), false);
    assert.equal(livePid(d, 'web-vm'), undefined, 'a live pid that is not our VM is not the VM');
  });

  it('a nonexistent pid is not live', () => {
    const d = dir();
    writeFileSync(stateFiles(d).pidfile, `${NO_SUCH_PID}\n`);
    assert.equal(isOurVm(NO_SUCH_PID, 'web-vm', d), false);
    assert.equal(livePid(d, 'web-vm'), undefined);
    assert.equal(livePid(dir(), 'web-vm'), undefined, 'no pidfile');
  });

  // `guest=N` is what the agent passes now (QEMU keeps its process name); `guest=N,process=N` is
  // what earlier agents passed: their VMs must still be recognised and adopted.
  for (const [form, nameArg] of [['guest=', 'guest=web,,vm'], ['guest=,process= (earlier agents)', 'guest=web,,vm,process=web,,vm']] as const) {
    describe(`a process whose argv looks like our QEMU: -name ${form}`, () => {
      let child: ChildProcess;
      let d: string;
      const name = 'web,vm';
      before(async () => {
        d = dir();
        // node -e '<idle>' -- -name guest=... -pidfile <dir>/qemu.pid: the argv isOurVm checks.
        child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', '-name', nameArg, '-pidfile', stateFiles(d).pidfile], { stdio: 'ignore' });
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', resolve);
          child.once('error', reject);
        });
        writeFileSync(stateFiles(d).pidfile, `${child.pid}\n`);
      });
      after(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const gone = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          await gone;
        }
      });

      it('is recognised by name (commas doubled) and pidfile', () => {
        const pid = child.pid!;
        assert.equal(isOurVm(pid, name, d), true);
        assert.equal(livePid(d, name), pid);
      });

      it('is not ours under another name or another state dir', () => {
        const pid = child.pid!;
        assert.equal(isOurVm(pid, 'web-vm', d), false);
        assert.equal(isOurVm(pid, 'web,,vm', d), false);
        assert.equal(isOurVm(pid, name, dir()), false);
      });

      it('is gone once it exited and was reaped', async () => {
        const pid = child.pid!;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
        assert.equal(processLive(pid), false);
        assert.equal(livePid(d, name), undefined);
      });
    });
  }
});

function vmSpec(over: Partial<ComponentSpec> = {}): ComponentSpec {
  return {
    service: 'web',
    name: 'vm',
    runtime: 'unikernel',
    image: 'guest.qcow2',
    cmd: [],
    env: {},
    memory: 128,
    network: 'auto',
    ports: [],
    volumes: [],
    restart: 'always',
    ...over,
  } as ComponentSpec;
}

/** Runs fn, asserts it throws a RuntimeError, returns its message. */
function placeError(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RuntimeError, `expected a RuntimeError, got ${String(caught)}`);
  assert.equal(caught.operation, 'place');
  assert.equal(caught.workload, 'web-vm');
  return caught.message;
}

describe('resolveHostKey', () => {
  const LINE = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcYRpm8kWcEx2kPh2VX1MG1fVDr4+4dhA7lCqnIU3sT root@vm';
  let images: string;
  let outside: string;
  before(() => {
    images = dir();
    outside = dir();
    writeFileSync(join(images, 'host_key.pub'), `${LINE}\n`);
    mkdirSync(join(images, 'keys'));
    writeFileSync(join(images, 'keys', 'vm.pub'), `# generated by the image build\r\n\r\necdsa-sha2-nistp256 AAAAE2VjZHNh other  \r\nssh-ed25519 AAAAsecond\r\n`);
    writeFileSync(join(images, 'empty.pub'), '# nothing here\n');
    writeFileSync(join(outside, 'host_key.pub'), `${LINE}\n`);
  });

  it('a key line passes through, trimmed', () => {
    assert.equal(resolveHostKey(vmSpec({ ssh_host_key: `${LINE}  ` }), [images], 'web-vm'), LINE);
    assert.equal(resolveHostKey(vmSpec({ ssh_host_key: 'ecdsa-sha2-nistp256 AAAAE2VjZHNh' }), [join(root, 'nope')], 'web-vm'), 'ecdsa-sha2-nistp256 AAAAE2VjZHNh', 'no file is read');
  });

  it('a .pub file in the images directory is read (its first key line)', () => {
    assert.equal(resolveHostKey(vmSpec({ ssh_host_key: 'host_key.pub' }), [images], 'web-vm'), LINE);
    assert.equal(resolveHostKey(vmSpec({ ssh_host_key: 'keys/vm.pub' }), [images], 'web-vm'), 'ecdsa-sha2-nistp256 AAAAE2VjZHNh other');
    assert.equal(resolveHostKey(vmSpec({ ssh_host_key: join(images, 'host_key.pub') }), [outside, images], 'web-vm'), LINE, 'absolute, in the second dir');
  });

  it('without ssh_host_key, host_key.pub of the first images directory is used', () => {
    assert.equal(resolveHostKey(vmSpec(), [images], 'web-vm'), LINE);
  });

  it("a missing file: the error names the path and 'ssh_host_key'", () => {
    const msg = placeError(() => resolveHostKey(vmSpec({ ssh_host_key: 'missing.pub' }), [images], 'web-vm'));
    assert.ok(msg.includes(join(images, 'missing.pub')), msg);
    assert.ok(msg.includes('ssh_host_key'), msg);
    const dflt = placeError(() => resolveHostKey(vmSpec(), [outside + '-none'], 'web-vm'));
    assert.ok(dflt.includes(join(outside + '-none', 'host_key.pub')) && dflt.includes('ssh_host_key'), dflt);
  });

  it('a file outside the images directories is refused, not read', () => {
    const msg = placeError(() => resolveHostKey(vmSpec({ ssh_host_key: join(outside, 'host_key.pub') }), [images], 'web-vm'));
    assert.match(msg, /ssh_host_key must be inside an allowed image directory/);
    assert.ok(msg.includes(images), msg);
    const dots = placeError(() => resolveHostKey(vmSpec({ ssh_host_key: `../${outside.split('/').at(-1)}/host_key.pub` }), [images], 'web-vm'));
    assert.match(dots, /ssh_host_key must not contain '\.\.'/);
  });

  it('a file with no key line is an error', () => {
    const msg = placeError(() => resolveHostKey(vmSpec({ ssh_host_key: 'empty.pub' }), [images], 'web-vm'));
    assert.match(msg, /holds no public key line/);
  });
});

describe('keyBlob', () => {
  /** An OpenSSH ed25519 public key blob: string "ssh-ed25519", string <32-byte key>. */
  function ed25519Blob(): Buffer {
    const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    return Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  }

  it('decodes the base64 of the second field', () => {
    const blob = ed25519Blob();
    const b64 = blob.toString('base64');
    assert.deepEqual(keyBlob(`ssh-ed25519 ${b64} root@vm`), blob);
    assert.deepEqual(keyBlob(`ssh-ed25519 ${b64}`), blob);
    assert.deepEqual(keyBlob(`  ssh-ed25519\t${b64}   comment with spaces \n`), blob);
    assert.equal(keyBlob(`ssh-ed25519 ${b64}`).subarray(4, 15).toString(), 'ssh-ed25519');
  });

  it('different keys give different blobs', () => {
    const a = ed25519Blob().toString('base64');
    const b = ed25519Blob().toString('base64');
    assert.ok(!keyBlob(`ssh-ed25519 ${a}`).equals(keyBlob(`ssh-ed25519 ${b}`)));
  });

  it('throws for a line without a second field', () => {
    assert.throws(() => keyBlob('garbage'), /not an OpenSSH public key line/);
    assert.throws(() => keyBlob('   '), /not an OpenSSH public key line/);
  });
});
