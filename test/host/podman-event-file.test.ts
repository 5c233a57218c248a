// Tailing podman's events file with inotify (src/runtime/podman-event-file.ts), on a real file
// written the way podman writes it: appended lines, a line written in two pieces, a rotation.
import { strict as assert } from 'node:assert';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tailEventFile } from '../../src/runtime/podman-event-file.js';

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
};

describe('podman events file tail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-evfile-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads only what is appended after it starts, whole lines in order; a rotation is a gap', async () => {
    const file = join(dir, 'events.log');
    writeFileSync(file, '{"old":1}\n');
    const lines: string[] = [];
    const gaps: string[] = [];
    const tail = await tailEventFile(file, { line: (l) => lines.push(l), gap: (w) => gaps.push(w), dead: (w) => gaps.push(`dead: ${w}`) });
    assert.ok(tail);
    try {
      appendFileSync(file, '{"a":1}\n{"b":');
      appendFileSync(file, '2}\n');
      await until('two lines', () => lines.length === 2);
      assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
      // podman rewrites the file past its size limit: a new file takes its place.
      writeFileSync(join(dir, 'events.log.new'), '{"kept":1}\n');
      renameSync(join(dir, 'events.log.new'), file);
      await until('a gap', () => gaps.length === 1);
      appendFileSync(file, '{"c":3}\n');
      await until('the line after the rotation', () => lines.length === 3);
      assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":3}'], 'the rewritten content is not read again');
      assert.deepEqual(gaps, ['podman rotated its events file']);
    } finally {
      tail.stop();
    }
  });

  it('no such file: the caller uses `podman events` instead', async () => {
    assert.equal(await tailEventFile(join(dir, 'none.log'), { line: () => undefined, gap: () => undefined, dead: () => undefined }), undefined);
  });
});
