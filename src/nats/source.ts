/**
 * The NATS desired-state source of `agent run`: watches desired.<node>.> in the fleet's KV bucket
 * (current values first, then every change) and writes each change into the registry through the
 * same validated path as `agent apply`, one transaction per change with the revision it came from.
 * It never creates the bucket (a master does): until it exists the source waits and says so. With
 * NATS gone the agent reconciles on from its registry; the client reconnects forever, with jitter,
 * and the watch resumes after the stored revision. Decisions are in decide.ts; this is the I/O.
 */
import { connect, Events, KvWatchInclude, type KV, type KvEntry, type NatsConnection, type QueuedIterator } from 'nats';
import type { Logger } from 'pino';
import type { NatsSettings } from '../config/config.js';
import { ValidationError } from '../errors.js';
import type { Registry, SourcePosition, SourceRejection, SourceState } from '../registry/index.js';
import { bucketMissing, connectionOptions, natsReason } from './connection.js';
import { decideEntry, oneLine, relistDeletes, watchStart, type StreamNow } from './decide.js';
import { desiredFilter, desiredKey } from './keys.js';

export interface NatsSourceOptions {
  settings: NatsSettings;
  registry: Registry;
  imagesDirs: string[];
  log: Logger;
  /** Between attempts to bind the bucket or restart a failed watch. */
  retryMs?: number;
}

/** Marks a position written during a re-list: a restart then re-lists again (its deletions were not done yet). */
const RELISTING = 'relisting:';

export class NatsSource {
  private nc: NatsConnection | undefined;
  private kvHandle: KV | undefined;
  private watcher: QueuedIterator<KvEntry> | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly rejected = new Map<string, SourceRejection>();
  private st: SourceState;
  private wake: (() => void) | undefined;

  constructor(private readonly o: NatsSourceOptions) {
    const s = o.settings;
    const before = o.registry.source.state();
    const same = before && before.bucket === s.bucket && before.node === s.node;
    // Refusals found before a restart stay reported: a resumed watch will not see those values again.
    for (const r of same ? before.rejected : []) this.rejected.set(r.key, r);
    this.st = { kind: 'nats', urls: s.urls, bucket: s.bucket, node: s.node, state: 'connecting', since: new Date().toISOString(), revision: o.registry.source.position()?.revision ?? null, error: null, rejected: [...this.rejected.values()] };
    this.save();
  }

  /** Connects (in the background: an agent starts whether NATS answers or not) and watches. */
  start(): void {
    this.running = this.run().catch((err: unknown) => this.o.log.error({ err }, 'nats source stopped'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.stop();
    this.wake?.();
    await this.nc?.close().catch(() => undefined);
    await this.running;
  }

  /** The bucket, once bound (the status publisher writes status.<node> through it). */
  kv(): KV | undefined {
    return this.nc && !this.nc.isClosed() && this.st.state === 'connected' ? this.kvHandle : undefined;
  }

  rejectedList(): SourceRejection[] {
    return [...this.rejected.values()];
  }

  appliedRevision(): number | null {
    return this.o.registry.source.position()?.revision ?? null;
  }

  private async run(): Promise<void> {
    const s = this.o.settings;
    this.nc = await connect(connectionOptions({ ...s, name: `mcp-agent ${s.node}` }, 'forever'));
    if (this.stopped) return;
    this.o.log.info({ urls: s.urls, bucket: s.bucket, node: s.node }, 'nats source connected');
    void this.followStatus(this.nc);
    while (!this.stopped) {
      try {
        await this.watchOnce(this.nc);
      } catch (err) {
        if (this.stopped) break;
        const msg = natsReason(err);
        const missing = bucketMissing(err);
        if (missing && !this.nc.isClosed() && this.st.state !== 'disconnected') this.setState('waiting', `bucket ${s.bucket} does not exist (yet): a master creates it`);
        else this.o.log.warn({ err: msg }, 'nats watch ended; restarting it');
        this.st.error = missing ? this.st.error : msg;
      }
      await this.pause(this.o.retryMs ?? 2000);
    }
  }

  /** Disconnect and reconnect: say so in the registry, and restart the watch from the stored revision. */
  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const ev of nc.status()) {
      if (ev.type === Events.Disconnect) {
        this.setState('disconnected', `lost ${String(ev.data)}`);
        this.o.log.warn({ server: ev.data }, 'nats disconnected: reconciling on from the registry, reconnecting');
      } else if (ev.type === Events.Reconnect) {
        this.o.log.info({ server: ev.data }, 'nats reconnected: catching up from the stored revision');
        this.setState('connecting', null);
        // The ordered consumer behind the watch may not survive a server restart: start a new one.
        this.watcher?.stop();
        this.wake?.();
      }
    }
  }

  private async watchOnce(nc: NatsConnection): Promise<void> {
    const s = this.o.settings;
    const kv = await nc.jetstream().views.kv(s.bucket, { bindOnly: true });
    const info = (await kv.status()).streamInfo;
    const now: StreamNow = { created: info.created, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
    this.kvHandle = kv;
    const start = watchStart(this.o.registry.source.position(), now);
    const key = desiredFilter(s.node);
    this.setState('connected', null);
    if (start.mode === 'resume') {
      this.o.log.info({ from: start.from }, 'nats watch resumes after the stored revision');
      this.watcher = await kv.watch({ key, include: KvWatchInclude.AllHistory, resumeFromRevision: start.from });
      for await (const e of this.watcher) this.handle(e, now.created);
      return;
    }
    this.o.log.info({ reason: start.reason }, 'nats watch re-lists every key of this node');
    // Until the current values are all in, positions say "re-listing": a restart then re-lists
    // again, since the deletions of services no key names are made only at the end.
    const relisting = `${RELISTING}${now.created}`;
    const listed = new Set<string>();
    let last = now.lastSeq;
    let done = false;
    let empty = false;
    const finish = (): void => {
      done = true;
      for (const name of relistDeletes(this.o.registry.source.owned(), listed)) {
        this.o.registry.source.apply({ kind: 'delete', service: name }, { stream_created: relisting, revision: last }, `nats re-list: no key ${desiredKey(s.node, name)}`);
      }
      this.o.registry.source.advance({ stream_created: now.created, revision: last });
      this.st.revision = last;
      this.setState('connected', null);
    };
    this.watcher = await kv.watch({ key, include: KvWatchInclude.LastValue, initializedFn: () => (empty = true) });
    // Called before any entry arrived: the node has no keys at all.
    if (empty && this.watcher.getReceived() === 0) finish();
    for await (const e of this.watcher) {
      if (e.operation === 'PUT') listed.add(e.key.split('.')[2] ?? '');
      last = Math.max(last, e.revision);
      this.handle(e, done ? now.created : relisting);
      // delta: entries still pending on the consumer; 0 = the current values are all in.
      if (!done && (e.delta ?? 0) === 0) finish();
    }
  }

  /** One entry: decide, then write exactly that (one transaction), and report a refusal. */
  private handle(e: KvEntry, streamCreated: string): void {
    const pos: SourcePosition = { stream_created: streamCreated, revision: e.revision };
    const why = `nats ${e.key} revision ${e.revision}`;
    const origins = new Map(this.o.registry.desired.readServices().map((x) => [x.name, x.origin]));
    const d = decideEntry(e, { node: this.o.settings.node, originOf: (n) => origins.get(n), imagesDirs: this.o.imagesDirs });
    let refusal: string | undefined;
    if (d.kind === 'apply' || d.kind === 'delete') {
      try {
        this.o.registry.source.apply(d.kind === 'apply' ? { kind: 'apply', spec: d.spec } : { kind: 'delete', service: d.service }, pos, why);
      } catch (err) {
        // A rule only the registry can check (a workload name another service uses): refused too.
        if (!(err instanceof ValidationError)) throw err;
        refusal = oneLine(err);
      }
    } else if (d.kind === 'refuse') refusal = d.error;
    if (refusal !== undefined) {
      const r = { key: e.key, revision: e.revision, error: refusal };
      this.rejected.set(e.key, r);
      this.o.registry.source.refused(r, d.service);
      this.o.registry.source.advance(pos);
      this.o.log.warn(r, 'nats value refused: the registry keeps what it had');
    } else {
      if (d.kind === 'ignore') this.o.registry.source.advance(pos);
      this.rejected.delete(e.key);
    }
    this.st.revision = e.revision;
    this.st.rejected = this.rejectedList();
    this.save();
  }

  private setState(state: SourceState['state'], error: string | null): void {
    if (this.st.state !== state) this.st.since = new Date().toISOString();
    this.st.state = state;
    this.st.error = error;
    this.save();
  }

  private save(): void {
    this.o.registry.source.setState(this.st);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
