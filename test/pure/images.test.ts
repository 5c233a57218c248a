// Where VM boot files may come from: path arithmetic against the allowed image directories.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { resolveBootFiles, resolveBootPath, withBootFilesChecked } from '../../src/agent/images.js';
import type { ComponentSpec } from '../../src/manifest/schema.js';

const DIRS = ['/srv/images', '/opt/vm-images'];

function ok(p: string, dirs = DIRS): string {
  const r = resolveBootPath(p, dirs);
  assert.ok(r.ok, `${p} refused: ${r.ok ? '' : r.rule}`);
  return r.path;
}

function refused(p: string, dirs = DIRS): string {
  const r = resolveBootPath(p, dirs);
  assert.ok(!r.ok, `${p} accepted as ${r.ok ? r.path : ''}`);
  return r.rule;
}

describe('resolveBootPath', () => {
  it('a relative path is inside the first directory', () => {
    assert.equal(ok('guest.img'), '/srv/images/guest.img');
    assert.equal(ok('v1/vmlinux'), '/srv/images/v1/vmlinux');
    assert.equal(ok('./v1/initrd.cpio'), '/srv/images/v1/initrd.cpio');
    assert.equal(ok('guest.img', ['/opt/vm-images', '/srv/images']), '/opt/vm-images/guest.img', 'the first directory, whichever it is');
  });

  it('an absolute path inside any allowed directory is accepted', () => {
    assert.equal(ok('/srv/images/guest.img'), '/srv/images/guest.img');
    assert.equal(ok('/opt/vm-images/k/vmlinux'), '/opt/vm-images/k/vmlinux');
    assert.equal(ok('/srv/images//a/./b.img'), '/srv/images/a/b.img', 'normalised');
  });

  it('an absolute path outside refused, the rule names the allowed directories', () => {
    const rule = refused('/etc/shadow');
    assert.match(rule, /must be inside an allowed image directory/);
    assert.ok(rule.includes('/srv/images') && rule.includes('/opt/vm-images'), rule);
    assert.equal(rule, 'must be inside an allowed image directory (/srv/images, /opt/vm-images)');
    refused('/srv/other/guest.img');
    refused('/guest.img');
  });

  it("'..' is refused, even where it would resolve inside", () => {
    for (const p of ['../etc/passwd', 'v1/../../etc/passwd', '/srv/images/../etc/passwd', 'v1/../guest.img', '/srv/images/v1/../guest.img', '..']) {
      assert.equal(refused(p), "must not contain '..'", p);
    }
  });

  it('a sibling directory sharing a prefix is not inside', () => {
    assert.match(refused('/srv/images2/guest.img'), /must be inside an allowed image directory/);
    assert.match(refused('/srv/images-old/guest.img'), /must be inside/);
    assert.match(refused('/opt/vm-images.bak/guest.img'), /must be inside/);
  });

  it('the directory itself is not a file in it', () => {
    refused('/srv/images');
    refused('/srv/images/');
    refused('/opt/vm-images/.');
    refused('.');
    refused('./');
  });

  it('with no directory configured nothing is accepted', () => {
    assert.equal(refused('guest.img', []), 'no image directory is configured');
    assert.equal(refused('/srv/images/guest.img', []), 'no image directory is configured');
  });

  it(
    "a file whose name starts with '..' (not a '..' segment) inside the directory is accepted",
    () => {
      assert.equal(ok('/srv/images/..foo.img'), '/srv/images/..foo.img');
      assert.equal(ok('..foo.img'), '/srv/images/..foo.img');
    },
  );
});

function spec(over: Partial<ComponentSpec>): ComponentSpec {
  return {
    service: 'web',
    name: 'vm',
    runtime: 'unikernel',
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

describe('resolveBootFiles', () => {
  it('resolves every boot field that is set', () => {
    const r = resolveBootFiles(spec({ kernel: 'vmlinux', initrd: '/opt/vm-images/initrd.cpio' }), DIRS);
    assert.deepEqual(r.issues, []);
    assert.deepEqual(r.files, { kernel: '/srv/images/vmlinux', initrd: '/opt/vm-images/initrd.cpio' });
    assert.ok(!('image' in r.files), 'no entry for an unset field');
  });

  it('a disk image alone', () => {
    const r = resolveBootFiles(spec({ image: 'guest.qcow2' }), DIRS);
    assert.deepEqual(r, { files: { image: '/srv/images/guest.qcow2' }, issues: [] });
  });

  it('collects one issue per broken field, keeps the good ones', () => {
    const r = resolveBootFiles(spec({ image: '/etc/guest.img', kernel: 'vmlinux', initrd: '../initrd.cpio' }), DIRS);
    assert.deepEqual(r.files, { kernel: '/srv/images/vmlinux' });
    assert.deepEqual(r.issues, [
      { field: 'image', rule: 'must be inside an allowed image directory (/srv/images, /opt/vm-images)' },
      { field: 'initrd', rule: "must not contain '..'" },
    ]);
  });

  it('every field broken gives three issues and no files', () => {
    const r = resolveBootFiles(spec({ image: '/a.img', kernel: '/srv/images2/k', initrd: '/srv/images' }), DIRS);
    assert.deepEqual(r.files, {});
    assert.deepEqual(
      r.issues.map((i) => i.field),
      ['image', 'kernel', 'initrd'],
    );
  });
});

describe('withBootFilesChecked: rows a master wrote', () => {
  const row = (component: string, over: Partial<ComponentSpec>) => ({ service: 'web', component, valid: true as const, spec: spec({ name: component, ...over }) });

  it('turns a row with a boot file outside the images directories invalid, with the reason', () => {
    const desired = { services: [], components: [row('bad', { kernel: '/etc/passwd', initrd: 'initrd.cpio' }), row('good', { kernel: 'vmlinux', initrd: 'initrd.cpio' })] };
    const checked = withBootFilesChecked(desired, DIRS);
    assert.deepEqual(checked.components[0], {
      service: 'web',
      component: 'bad',
      valid: false,
      error: 'kernel: must be inside an allowed image directory (/srv/images, /opt/vm-images)',
    });
    assert.equal(checked.components[1], desired.components[1], 'a good row is passed through as is');
  });

  it('leaves containers and rows already invalid alone', () => {
    const container = { service: 'web', component: 'c', valid: true as const, spec: spec({ runtime: 'container', image: '/etc/passwd' }) };
    const invalid = { service: 'web', component: 'x', valid: false as const, error: 'memory: is required' };
    assert.deepEqual(withBootFilesChecked({ services: [], components: [container, invalid] }, DIRS).components, [container, invalid]);
  });
});
