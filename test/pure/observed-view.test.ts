// The live observed view (src/agent/observed-view.ts) with an in-memory runtime: when it lists,
// when events are enough, and that the newest observation wins when an event and a listing race.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { RuntimeObserver } from '../../src/agent/observe.js';
import { ObservedView } from '../../src/agent/observed-view.js';
import type { RuntimeKind } from '../../src/manifest/schema.js';
import type { Observed, Runtime, RuntimeEvent } from '../../src/runtime/types.js';

function container(name: string, over: Partial<Observed> = {}): Observed {
  return { runtime: 'container', name, id: `id-${name}`, key: { service: 's', component: name }, specHash: 'h1', state: 'running', exitCode: undefined, startedAt: undefined, address: undefined, ...over };
}

/** A runtime whose listing is what `items` holds, counted; `hold` makes the next list wait for `release`. */
class ListedRuntime {
  readonly kind = 'container' as const;
  items: Observed[] = [];
  lists = 0;
  inspects = 0;
  failNext: string | undefined;
  private held: Array<() => void> | undefined;
  hold(): void {
    this.held = [];
  }
  release(): void {
    for (const r of this.held ?? []) r();
    this.held = undefined;
  }
  async list(): Promise<Observed[]> {
    this.lists++;
    const snapshot = this.items.map((o) => ({ ...o }));
    if (this.held) await new Promise<void>((r) => this.held!.push(r));
    if (this.failNext) {
      const why = this.failNext;
      this.failNext = undefined;
      throw new Error(why);
    }
    return snapshot;
  }
  async inspect(name: string): Promise<Observed | undefined> {
    this.inspects++;
    return this.items.find((o) => o.name === name);
  }
}

function viewOf(rt: ListedRuntime, clock: () => number = Date.now): ObservedView {
  const runtimes = new Map<RuntimeKind, Runtime>([['container', rt as unknown as Runtime]]);
  return new ObservedView(runtimes, new RuntimeObserver(runtimes), clock);
}

const names = async (v: ObservedView): Promise<string[]> => {
  const l = (await v.read()).listings.container;
  assert.ok(l?.ok, 'listed');
  return l.items.map((o) => `${o.name}:${o.state}`).sort();
};

const event = (name: string, at: number, observed: Observed | null | undefined, status = 'died'): RuntimeEvent => ({ runtime: 'container', workload: name, status, exitCode: undefined, at, observed });

describe('the live observed view', () => {
  it('lists once at first, then answers from the view until a resync asks for a listing', async () => {
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt);
    assert.deepEqual(await names(v), ['a:running']);
    assert.deepEqual(await names(v), ['a:running']);
    assert.equal(rt.lists, 1);
    rt.items = [container('a'), container('b')];
    v.relist('scheduled resync');
    assert.deepEqual(await names(v), ['a:running', 'b:running']);
    assert.equal(rt.lists, 2);
  });

  it('an event that says what the workload became updates it without a listing', async () => {
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt);
    await v.read();
    assert.equal(v.onEvent(event('a', Date.now() + 1, container('a', { state: 'exited', exitCode: 137 }))), true);
    assert.deepEqual(await names(v), ['a:exited']);
    assert.equal(v.onEvent(event('b', Date.now() + 2, null, 'remove')), true, 'a removal of an unknown workload still counts as news');
    assert.equal(rt.lists, 1);
    assert.equal(rt.inspects, 0);
  });

  it('an event older than what the view holds changes nothing (a replayed window)', async () => {
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt);
    const before = Date.now() - 10_000;
    await v.read();
    assert.equal(v.onEvent(event('a', before, container('a', { state: 'exited' }))), false);
    assert.deepEqual(await names(v), ['a:running']);
  });

  it('an event that happens while a listing is under way beats that listing', async () => {
    let now = 1000;
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt, () => now);
    await v.read(); // listed at 1000
    v.relist('scheduled resync');
    rt.hold();
    now = 2000;
    const reading = v.read(); // this listing began at 2000 and saw `a` running
    await new Promise((r) => setImmediate(r));
    v.onEvent(event('a', 2001, container('a', { state: 'exited', exitCode: 137 })));
    rt.release();
    const l = (await reading).listings.container;
    assert.ok(l?.ok);
    assert.deepEqual(l.items.map((o) => o.state), ['exited'], 'the died event is newer than the listing');
    // And the other way round: an event from before the listing began is older than the listing.
    v.relist('resync');
    now = 3000;
    v.onEvent(event('a', 2500, container('a', { state: 'exited' })));
    rt.items = [container('a', { id: 'id-a2' })];
    assert.deepEqual(await names(v), ['a:running']);
  });

  it('an event that does not say what happened makes the next read inspect that workload only', async () => {
    let now = 1000;
    const rt = new ListedRuntime();
    rt.items = [container('a'), container('b')];
    const v = viewOf(rt, () => now);
    await v.read();
    rt.items = [container('a', { state: 'exited' }), container('b')];
    assert.equal(v.onEvent(event('a', 1005, undefined)), true);
    now = 1010;
    assert.equal(v.seen('container', 'a'), undefined, 'not sure until it looked');
    assert.deepEqual(await names(v), ['a:exited', 'b:running']);
    assert.equal(rt.lists, 1);
    assert.equal(rt.inspects, 1);
    assert.equal(v.seen('container', 'a')?.state, 'exited');
  });

  it('a gap in the events, or a listing that failed, lists again; a failed listing reads as failed, never as empty', async () => {
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt);
    await v.read();
    assert.equal(v.onEvent({ runtime: 'container', gap: true, why: 'podman events ended early' }), true);
    rt.failNext = 'podman ps did not answer';
    const failed = (await v.read()).listings.container;
    assert.deepEqual(failed, { ok: false, error: 'podman ps did not answer' });
    assert.equal(v.seen('container', 'a'), undefined, 'nothing is vouched for while the runtime cannot list');
    assert.deepEqual(await names(v), ['a:running']);
    assert.equal(rt.lists, 3);
    assert.equal(v.seen('container', 'nope'), null, 'a listed runtime vouches that a name is absent');
  });

  it('an action\'s result is recorded as of when its call began; a removal is remembered against older listings', async () => {
    let now = 1000;
    const rt = new ListedRuntime();
    rt.items = [container('a')];
    const v = viewOf(rt, () => now);
    await v.read();
    v.record('container', 'b', container('b'), 1500);
    v.record('container', 'a', null, 1500);
    assert.deepEqual(await names(v), ['b:running']);
    // A died event newer than the start's call wins over the start's result.
    v.onEvent(event('b', 1600, container('b', { state: 'exited' })));
    v.record('container', 'b', container('b'), 1550);
    assert.deepEqual(await names(v), ['b:exited']);
    now = 2000;
    v.lookAgain('container', 'b');
    assert.equal(v.seen('container', 'b'), undefined);
  });

  it('a start\'s own events are not news; a workload that died during its start stays dead', async () => {
    let now = 1000;
    const rt = new ListedRuntime();
    const v = viewOf(rt, () => now);
    await v.read();
    // podman run began at 1100; its create event (1150) arrived before the call ended at 1300.
    v.onEvent(event('a', 1150, container('a', { state: 'created' }), 'create'));
    now = 1300;
    v.record('container', 'a', container('a'), 1100);
    assert.equal(v.seen('container', 'a')?.state, 'running');
    assert.equal(v.onEvent(event('a', 1200, container('a'), 'start')), false, 'its start event, late, is not news');
    // b died at 2150 while its start (2100-2300) was under way: the death is kept, delivered before or after.
    v.onEvent(event('b', 2150, container('b', { state: 'exited', exitCode: 1 })));
    now = 2300;
    v.record('container', 'b', container('b'), 2100);
    assert.equal(v.seen('container', 'b')?.state, 'exited');
    now = 3300;
    v.record('container', 'c', container('c'), 3100);
    assert.equal(v.onEvent(event('c', 3200, container('c', { state: 'exited', exitCode: 1 }))), true);
    assert.equal(v.seen('container', 'c')?.state, 'exited');
    // A removal's own died and remove events change nothing.
    now = 4300;
    v.record('container', 'c', null, 4100);
    assert.equal(v.onEvent(event('c', 4200, container('c', { state: 'exited' }))), false);
    assert.equal(v.seen('container', 'c'), null);
  });

  it('a listing begun while an action ran never overrides the action\'s result, whichever ends first', async () => {
    let now = 1000;
    const rt = new ListedRuntime();
    rt.items = [container('a', { state: 'exited', exitCode: 137 })];
    const v = viewOf(rt, () => now);
    await v.read();
    // A restart of a ran 1100-1300; a resync listing began at 1150 and saw it still exited.
    for (const listingEndsFirst of [true, false]) {
      v.relist('scheduled resync');
      rt.hold();
      now = 1150;
      const reading = v.read();
      await new Promise((r) => setImmediate(r));
      now = 1300;
      if (!listingEndsFirst) v.record('container', 'a', container('a'), 1100);
      rt.release();
      await reading;
      if (listingEndsFirst) v.record('container', 'a', container('a'), 1100);
      assert.equal(v.seen('container', 'a')?.state, 'running', `listing ends ${listingEndsFirst ? 'first' : 'last'}`);
      rt.items = [container('a', { state: 'exited', exitCode: 137 })];
    }
  });

  describe('snapshot (what the local API answers from)', () => {
    it('reads as a failed listing before the first listing, and never lists itself', () => {
      const rt = new ListedRuntime();
      rt.items = [container('a')];
      const snap = viewOf(rt).snapshot().container;
      assert.ok(snap && !snap.listing.ok);
      assert.match(snap.listing.error, /has not listed the container runtime yet/);
      assert.equal(snap.listedAt, undefined);
      assert.equal(rt.lists, 0);
    });

    it('holds what the view holds, each workload with the time of what it shows', async () => {
      let now = 1000;
      const rt = new ListedRuntime();
      rt.items = [container('a'), container('b')];
      const v = viewOf(rt, () => now);
      await v.read(); // listed at 1000
      now = 5000;
      v.onEvent(event('a', 4000, container('a', { state: 'exited', exitCode: 1 })));
      v.onEvent(event('b', 4500, null, 'remove'));
      const snap = v.snapshot().container;
      assert.ok(snap?.listing.ok);
      assert.deepEqual(snap.listing.items.map((o) => `${o.name}:${o.state}`), ['a:exited'], 'b is known gone');
      assert.equal(snap.listedAt, 1000);
      assert.equal(snap.seenAt.get('a'), 4000);
      assert.equal(snap.seenAt.get('b'), 4500);
      assert.equal(snap.relist, undefined);
      assert.equal(rt.lists, 1, 'a snapshot lists nothing');
    });

    it('a failed listing reads as failed; a pending relist is said, and what is held still shows', async () => {
      const rt = new ListedRuntime();
      rt.items = [container('a')];
      const v = viewOf(rt);
      await v.read();
      v.relist('scheduled resync');
      const pending = v.snapshot().container;
      assert.ok(pending?.listing.ok);
      assert.equal(pending.relist, 'scheduled resync');
      assert.equal(pending.listing.items.length, 1);
      rt.failNext = 'podman is gone';
      await v.read();
      const failed = v.snapshot().container;
      assert.ok(failed && !failed.listing.ok);
      assert.equal(failed.listing.error, 'podman is gone');
    });
  });
});
