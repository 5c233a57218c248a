// The podman REST API's answers (captured from podman 4.3.1 here) read into what the agent
// observes, by the same code as `podman ps --format json`; podman's error bodies into messages;
// `podman ps` filters into the API's `filters` parameter; the podman settings' rules.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { RuntimeError, ValidationError } from '../../src/errors.js';
import { apiErrorMessage, apiFilters } from '../../src/runtime/podman-api.js';
import { observedOf, parsePsJson } from '../../src/runtime/podman-ps.js';
import { defaultApiSocket } from '../../src/runtime/podman-service.js';
import { expectError } from '../helpers/expect-error.js';

const ID = '670783f1f98fe45453c3349238a56dba3eed88138e17c88c483f6acdd908111d';
/** One entry of `GET /v4.0.0/libpod/containers/json?all=true&filters=…`, as podman 4.3.1 answered. */
const API_LIST = `[{"AutoRemove":false,"Command":["sh","-c","exit 3"],"Created":"2026-11-29T20:47:30.367345997Z","CreatedAt":"","Exited":true,"ExitedAt":1795985250,"ExitCode":3,"Id":"${ID}","Image":"localhost/agent-busybox:latest","ImageID":"20191866099454d3e3ffd9ea2f66400381978f864ae6b06534f9ceab741d56f2","IsInfra":false,"Labels":{"io.mcp-agent.agent":"cap","io.mcp-agent.component":"web/api","io.mcp-agent.spec-hash":"abc"},"Mounts":[],"Names":["papicap1"],"Namespaces":{},"Networks":[],"Pid":0,"Pod":"","PodName":"","Ports":null,"Size":null,"StartedAt":1795985250,"State":"exited","Status":""}]`;

describe('podman API listing', () => {
  it('an API entry reads as podman ps does: name, id, state, exit code, labels, start time', () => {
    const [c] = parsePsJson(API_LIST, 'list', 'the podman API');
    assert.ok(c);
    const o = observedOf(c);
    assert.deepEqual([o.name, o.id, o.state, o.exitCode, o.specHash], ['papicap1', ID, 'exited', 3, 'abc']);
    assert.deepEqual(o.key, { service: 'web', component: 'api' });
    assert.equal(o.startedAt, new Date(1795985250 * 1000).toISOString());
  });

  it('no containers: [] , null and an empty answer are all empty', () => {
    for (const text of ['[]', 'null', '', '\n']) assert.deepEqual(parsePsJson(text, 'list', 'the podman API'), []);
  });

  it('an answer that is not the listing is an error naming the operation and who printed it', () => {
    expectError(() => parsePsJson('<html>', 'list', 'the podman API'), { type: RuntimeError, message: [/^podman list: /, /the podman API printed something that is not JSON/] });
    expectError(() => parsePsJson('{"message":"x"}', 'find', 'the podman API'), { type: RuntimeError, message: [/^podman find: /, /unexpected the podman API output/] });
    expectError(() => parsePsJson('[{"Names":["a"],"State":"running"}]', 'list', 'podman ps'), { type: RuntimeError, message: /Id/ });
  });

  it("states map like the CLI's, unknown ones stay unknown", () => {
    const state = (s: string): string => observedOf({ Id: ID, Names: ['x'], State: s }).state;
    assert.deepEqual(['running', 'exited', 'stopped', 'created', 'paused', 'removing'].map(state), ['running', 'exited', 'exited', 'created', 'paused', 'unknown']);
  });
});

describe('podman API errors and filters', () => {
  it("podman's own message from its JSON error body; else the status and the text", () => {
    const body = '{"cause":"no such container","message":"no container with name or ID \\"x\\" found: no such container","response":404}';
    assert.equal(apiErrorMessage(404, body), 'no container with name or ID "x" found: no such container');
    assert.equal(apiErrorMessage(500, '{"cause":"boom","response":500}'), 'boom');
    assert.equal(apiErrorMessage(502, 'Bad Gateway'), 'HTTP 502: Bad Gateway');
    assert.equal(apiErrorMessage(500, ''), 'HTTP 500');
  });

  it('the service socket lies beside the registry, or under /run/mcp-agent/<id> when that is too long for a unix socket', () => {
    assert.equal(defaultApiSocket('/var/lib/mcp-agent', 'abc'), '/var/lib/mcp-agent/podman.sock');
    assert.equal(defaultApiSocket(`/srv/${'d'.repeat(100)}`, 'abc'), '/run/mcp-agent/abc/podman.sock');
  });

  it('podman ps filters become the JSON filters parameter; several labels are kept apart', () => {
    const f = apiFilters(['label=io.mcp-agent.agent=abc', 'label=x=y', 'name=^web-api$']);
    assert.deepEqual(JSON.parse(decodeURIComponent(f)), { label: ['io.mcp-agent.agent=abc', 'x=y'], name: ['^web-api$'] });
    assert.throws(() => apiFilters(['nolabel']), /not a podman filter/);
  });
});

describe('podman API settings', () => {
  const loadFrom = (podman: Record<string, unknown>): ReturnType<typeof loadConfig> => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-podman-api-test-'));
    try {
      writeFileSync(join(dir, 'agent.json'), JSON.stringify({ podman }));
      return loadConfig({ configPath: join(dir, 'agent.json'), env: {}, flags: {}, cwd: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('api defaults to auto with no socket; off and an absolute socket are accepted', () => {
    assert.equal(loadFrom({}).podman.api, 'auto');
    assert.equal(loadFrom({}).podman.api_socket, undefined);
    assert.equal(loadFrom({ api: 'off' }).podman.api, 'off');
    assert.equal(loadFrom({ api_socket: '/run/podman/podman.sock' }).podman.api_socket, '/run/podman/podman.sock');
  });

  it('a bad api or api_socket is named with its rule', () => {
    expectError(() => loadFrom({ api: 'on' }), { type: ValidationError, message: /podman\.api: must be auto or off/ });
    expectError(() => loadFrom({ api_socket: 'podman.sock' }), { type: ValidationError, message: /podman\.api_socket: must be an absolute path/ });
    expectError(() => loadFrom({ api_socket: `/${'x'.repeat(120)}` }), { type: ValidationError, message: /podman\.api_socket: must be at most 107 bytes/ });
  });
});
