// Unikernel rules of the component spec, through the manifest loader, and what the spec hash covers.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { specHash } from '../../src/identity.js';
import { ValidationError, type FieldIssue } from '../../src/errors.js';
import { loadManifestText } from '../../src/manifest/load.js';
import type { ComponentSpec, ServiceSpec } from '../../src/manifest/schema.js';

const SHA = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcYRpm8kWcEx2kPh2VX1MG1fVDr4+4dhA7lCqnIU3sT root@vm';

const load = (components: Array<Record<string, unknown>>, service: Record<string, unknown> = {}): ServiceSpec =>
  loadManifestText(JSON.stringify({ name: 'web', ...service, components }), 'json', 'test-source');

const vm = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'vm',
  runtime: 'unikernel',
  memory: 128,
  kernel: 'vmlinux',
  initrd: 'initrd.cpio',
  cmdline: 'console=ttyS0 quiet',
  ...over,
});
const disk = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'vm', runtime: 'unikernel', memory: 256, image: 'guest.qcow2', ...over });
const ctr = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'api', runtime: 'container', image: 'localhost/busybox:1', ...over });

function one(components: Array<Record<string, unknown>>): ComponentSpec {
  const s = load(components);
  assert.equal(s.components.length, 1);
  return s.components[0]!;
}

function issues(components: Array<Record<string, unknown>>): FieldIssue[] {
  let caught: unknown;
  try {
    load(components);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ValidationError, `expected a ValidationError, got ${String(caught)}`);
  return caught.issues;
}

/** Asserts the manifest fails with an issue on `field` whose rule matches. */
function hasIssue(components: Array<Record<string, unknown>>, field: string, rule: RegExp): FieldIssue[] {
  const list = issues(components);
  assert.ok(
    list.some((i) => i.field === field && rule.test(i.rule)),
    `no issue ${field}: ${rule} in ${JSON.stringify(list)}`,
  );
  return list;
}

describe('unikernel: valid specs', () => {
  it('kernel + initrd + cmdline', () => {
    const c = one([vm()]);
    assert.equal(c.runtime, 'unikernel');
    assert.equal(c.kernel, 'vmlinux');
    assert.equal(c.initrd, 'initrd.cpio');
    assert.equal(c.cmdline, 'console=ttyS0 quiet');
    assert.equal(c.image, undefined);
    assert.equal(c.memory, 128);
  });

  it('a disk image with its sha256 and a pinned host key', () => {
    const c = one([disk({ image_sha256: SHA, ssh_host_key: KEY, ports: [{ guest: 80, host: 8080 }, { guest: 53, protocol: 'udp' }] })]);
    assert.equal(c.image, 'guest.qcow2');
    assert.equal(c.image_sha256, SHA);
    assert.equal(c.ssh_host_key, KEY);
    assert.deepEqual(c.ports, [
      { guest: 80, host: 8080, protocol: 'tcp' },
      { guest: 53, protocol: 'udp' },
    ]);
  });

  it('a disk image plus a kernel needs no initrd', () => {
    const c = one([disk({ kernel: 'vmlinux' })]);
    assert.equal(c.kernel, 'vmlinux');
    assert.equal(c.initrd, undefined);
  });

  it("network defaults to 'auto'; slirp and auto are accepted", () => {
    assert.equal(one([vm()]).network, 'auto');
    assert.equal(one([vm({ network: 'slirp' })]).network, 'slirp');
  });

  it('memory 80 MiB is the smallest accepted', () => {
    assert.equal(one([vm({ memory: 80 })]).memory, 80);
  });

  it('udp guest port 22 is allowed (only the tcp SSH port is reserved)', () => {
    assert.deepEqual(one([vm({ ports: [{ guest: 22, protocol: 'udp' }] })]).ports, [{ guest: 22, protocol: 'udp' }]);
  });
});

describe('unikernel: refused specs', () => {
  it('image_sha256 must be 64 lowercase hex digits', () => {
    for (const bad of [SHA.toUpperCase(), SHA.slice(1), `${SHA}0`, 'g'.repeat(64), `sha256:${SHA}`]) {
      hasIssue([disk({ image_sha256: bad })], 'components[0].image_sha256', /must be 64 lowercase hex digits/);
    }
  });

  it('memory below 80 MiB is refused with the rule', () => {
    const list = hasIssue([vm({ memory: 79 })], 'components[0].memory', /at least 80 MiB for a unikernel/);
    assert.equal(list.length, 1);
    hasIssue([vm({ memory: 64 })], 'components[0].memory', /below that QEMU guests reset silently/);
  });

  it('memory is required', () => {
    hasIssue([vm({ memory: undefined })], 'components[0].memory', /is required for unikernel components/);
  });

  it('neither image nor kernel: the error is on image', () => {
    const list = hasIssue([{ name: 'vm', runtime: 'unikernel', memory: 128 }], 'components[0].image', /or kernel is required/);
    assert.ok(!list.some((i) => i.field === 'components[0].kernel'), JSON.stringify(list));
  });

  it('kernel without initrd and without image: the error is on initrd', () => {
    hasIssue([vm({ initrd: undefined })], 'components[0].initrd', /is required with kernel when no disk image is given/);
  });

  it('initrd (or cmdline) without kernel', () => {
    hasIssue([disk({ initrd: 'initrd.cpio' })], 'components[0].initrd', /needs kernel/);
    hasIssue([disk({ cmdline: 'console=ttyS0' })], 'components[0].cmdline', /needs kernel/);
    hasIssue([vm({ kernel: undefined })], 'components[0].initrd', /needs kernel/);
  });

  it('cmd and env are refused', () => {
    hasIssue([vm({ cmd: ['/bin/sh'] })], 'components[0].cmd', /not used by unikernel components/);
    hasIssue([vm({ env: { A: '1' } })], 'components[0].env', /not supported for unikernel components/);
  });

  it('volumes are refused', () => {
    hasIssue([vm({ volumes: [{ source: '/srv/data', target: '/data' }] })], 'components[0].volumes', /not supported for unikernel/);
  });

  it('tcp guest port 22 is refused', () => {
    hasIssue([vm({ ports: [{ guest: 80 }, { guest: 22, host: 2222 }] })], 'components[0].ports[1].guest', /must not be 22/);
  });

  it('duplicate host ports are refused, on the second one', () => {
    const list = hasIssue(
      [vm({ ports: [{ guest: 80, host: 8080 }, { guest: 81 }, { guest: 443, host: 8080 }] })],
      'components[0].ports[2].host',
      /duplicates host port 8080/,
    );
    assert.ok(!list.some((i) => i.field === 'components[0].ports[0].host'));
  });

  it("network 'none' is refused", () => {
    hasIssue([vm({ network: 'none' })], 'components[0].network', /must be auto, slirp or bridge/);
  });

  it('boot paths must not contain commas or ..', () => {
    hasIssue([vm({ kernel: 'vm,linux' })], 'components[0].kernel', /must not contain ','/);
    hasIssue([vm({ initrd: 'a,b.cpio' })], 'components[0].initrd', /must not contain ','/);
    hasIssue([disk({ image: 'guest,x.img' })], 'components[0].image', /must not contain ','/);
    hasIssue([vm({ kernel: '../vmlinux' })], 'components[0].kernel', /must not contain '\.\.'/);
    hasIssue([vm({ initrd: 'v1/../../initrd' })], 'components[0].initrd', /must not contain '\.\.'/);
    hasIssue([disk({ image: '../guest.img' })], 'components[0].image', /must not contain '\.\.'/);
    hasIssue([disk({ image: '/srv/images/../../etc/shadow' })], 'components[0].image', /must not contain '\.\.'/);
  });
});

describe('ssh_host_key', () => {
  it("accepts a public key line and a .pub file name", () => {
    for (const k of [KEY, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', 'ecdsa-sha2-nistp256 AAAAE2VjZHNh', 'host_key.pub', 'keys/vm-1.pub']) {
      assert.equal(one([disk({ ssh_host_key: k })]).ssh_host_key, k);
    }
  });

  it('refuses anything else', () => {
    for (const k of ['garbage', 'ssh-ed25519', 'ssh-ed25519 ', 'ssh-dss AAAAB3NzaC1kc3M', 'host_key', 'host key.pub', 'AAAAC3NzaC1lZDI1NTE5']) {
      hasIssue([disk({ ssh_host_key: k })], 'components[0].ssh_host_key', /must be a public key line/);
    }
  });
});

describe('container components refuse VM-only fields', () => {
  it('kernel, initrd, cmdline, image_sha256 and ssh_host_key', () => {
    const fields: Record<string, unknown> = { kernel: 'vmlinux', initrd: 'initrd.cpio', cmdline: 'quiet', image_sha256: SHA, ssh_host_key: KEY };
    for (const [f, v] of Object.entries(fields)) {
      hasIssue([ctr({ [f]: v })], `components[0].${f}`, /is only for unikernel components/);
    }
    const all = issues([ctr(fields)]).filter((i) => /is only for unikernel/.test(i.rule));
    assert.equal(all.length, 5, 'all five reported at once');
  });

  it('a valid container is unaffected', () => {
    assert.equal(one([ctr()]).network, 'none');
  });
});

describe('specHash of unikernel specs', () => {
  const base = one([vm({ image: 'guest.qcow2' })]);
  const h = specHash(base);

  it('changes with kernel, initrd, cmdline and image', () => {
    const changed: Array<Partial<ComponentSpec>> = [
      { kernel: 'vmlinux-2' },
      { initrd: 'initrd-2.cpio' },
      { cmdline: 'console=ttyS0' },
      { cmdline: undefined },
      { image: 'guest-2.qcow2' },
      { memory: 256 },
    ];
    for (const over of changed) assert.notEqual(specHash({ ...base, ...over }), h, JSON.stringify(over));
  });

  it('does not change with image_sha256 or ssh_host_key', () => {
    assert.equal(specHash({ ...base, image_sha256: SHA }), h);
    assert.equal(specHash({ ...base, ssh_host_key: KEY }), h);
    assert.equal(specHash({ ...base, ssh_host_key: 'host_key.pub', image_sha256: SHA }), h);
  });

  it('equal manifests hash equally', () => {
    assert.equal(specHash(one([vm({ image: 'guest.qcow2' })])), h);
  });
});
