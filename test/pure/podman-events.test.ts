// podman's event lines (captured from podman 4.3.1 here) into what a container is after them.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parsePodmanEvent } from '../../src/runtime/podman-events.js';
import { observedAfter } from '../../src/runtime/podman-watch.js';

const ID = '3478b55f0acb396bf310f194d816c867bfc929a91f17d2490e78b2d0dc0caa7c';
const line = (status: string, extra = ''): string =>
  `{${extra}"ID":"${ID}","Image":"localhost/agent-busybox:latest","Name":"web-api","Status":"${status}","Time":"2026-11-29T19:44:56.676075599Z","Type":"container","Attributes":{"io.mcp-agent.component":"web/api","io.mcp-agent.spec-hash":"abc"}}`;

describe('podman events', () => {
  it('a died line gives an exited container with its exit code, labels and time', () => {
    const e = parsePodmanEvent(line('died', '"ContainerExitCode":137,'));
    assert.ok(e);
    assert.equal(e.at, Date.parse('2026-11-29T19:44:56.676Z'));
    const o = observedAfter(e);
    assert.ok(o);
    assert.deepEqual([o.name, o.id, o.state, o.exitCode, o.specHash], ['web-api', ID, 'exited', 137, 'abc']);
    assert.deepEqual(o.key, { service: 'web', component: 'api' });
  });

  it('remove is gone; start says look (podman stamps it late); kill, init and cleanup say nothing', () => {
    assert.equal(observedAfter(parsePodmanEvent(line('remove'))!), null);
    assert.equal(observedAfter(parsePodmanEvent(line('start'))!), undefined);
    assert.equal(observedAfter(parsePodmanEvent(line('kill'))!), undefined);
    assert.equal(parsePodmanEvent(line('init')), undefined, 'not an event the agent uses');
    assert.equal(observedAfter(parsePodmanEvent(line('create'))!)?.state, 'created');
  });

  it('lines that are not container events are ignored', () => {
    assert.equal(parsePodmanEvent('not json'), undefined);
    assert.equal(parsePodmanEvent('{"Type":"image","Status":"pull","ID":"x","Name":"y","Time":"2026-11-29T19:44:56Z"}'), undefined);
    assert.equal(parsePodmanEvent(line('died').replace('2026-11-29T19:44:56.676075599Z', 'yesterday')), undefined);
  });
});
