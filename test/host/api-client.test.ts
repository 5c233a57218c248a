// The CLI's client of the local API against a real HTTP server on a unix socket: which answers it
// takes, which it checks against the schema, and when it falls back (undefined).
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { askAgent } from '../../src/api/client.js';

const Doc = z.object({ n: z.number() });
const schema = () => Promise.resolve(Doc);

describe('askAgent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-api-client-'));
  const socketPath = join(dir, 'agent.sock');
  const registryPath = join(dir, 'agent.db');
  writeFileSync(registryPath, '');
  // What the server answers next: a body and headers.
  let answer: { body: string; headers: Record<string, string> } = { body: '{}', headers: {} };
  let server: Server;
  before(async () => {
    server = createServer((_req, res) => {
      for (const [k, v] of Object.entries(answer.headers)) res.setHeader(k, v);
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  const target = { socketPath, registryPath };

  it('takes a document that fits the schema', async () => {
    answer = { body: '{"n":1}', headers: { 'x-agent-registry': registryPath } };
    assert.deepEqual(await askAgent(target, '/v1/x', schema), { n: 1 });
  });

  it('an answer that does not fit (an agent of another version) is no answer', async () => {
    answer = { body: '{"n":"one"}', headers: { 'x-agent-registry': registryPath, 'x-agent-build': 'older' } };
    assert.equal(await askAgent(target, '/v1/x', schema, 'newer'), undefined);
  });

  it('an agent of this very build is trusted: the schema is not even built', async () => {
    answer = { body: '{"n":"one"}', headers: { 'x-agent-registry': registryPath, 'x-agent-build': 'b1' } };
    const never = () => Promise.reject(new Error('the schema was asked for'));
    assert.deepEqual(await askAgent(target, '/v1/x', never, 'b1'), { n: 'one' });
  });

  it('an agent of another registry is not asked', async () => {
    answer = { body: '{"n":1}', headers: { 'x-agent-registry': join(dir, 'other.db') } };
    assert.equal(await askAgent(target, '/v1/x', schema), undefined);
  });

  it('no socket: no agent, without a connection attempt', async () => {
    assert.equal(await askAgent({ socketPath: join(dir, 'none.sock'), registryPath }, '/v1/x', schema), undefined);
  });
});
