// findExecutable on real files: what list() uses to tell that QEMU is installed without spawning it.
import { strict as assert } from 'node:assert';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findExecutable } from '../../src/runtime/command.js';

describe('findExecutable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-find-exec-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'tool'), '#!/bin/sh\n');
  chmodSync(join(bin, 'tool'), 0o755);
  writeFileSync(join(bin, 'plain'), 'not executable');
  chmodSync(join(bin, 'plain'), 0o644);
  mkdirSync(join(bin, 'adir'));

  it('finds a name on PATH, in PATH order', () => {
    assert.equal(findExecutable('tool', `/nonexistent:${bin}`), join(bin, 'tool'));
  });
  it('takes a path as it is', () => {
    assert.equal(findExecutable(join(bin, 'tool'), ''), join(bin, 'tool'));
    assert.equal(findExecutable('/nonexistent/qemu-system-x86_64'), undefined);
  });
  it('skips what is not an executable file', () => {
    assert.equal(findExecutable('plain', bin), undefined);
    assert.equal(findExecutable('adir', bin), undefined);
    assert.equal(findExecutable('missing', bin), undefined);
  });
});
