/** Facts about the registry itself: the agent id, the running agent's heartbeat. */
import type { Db } from './open.js';

export interface Heartbeat {
  pid: number;
  at: string;
}

export class MetaRepo {
  constructor(private readonly db: Db) {}

  get(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  set(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  delete(key: string): void {
    this.db.prepare('DELETE FROM meta WHERE key = ?').run(key);
  }

  /** The id in every workload label of this agent; created by the first migration. */
  agentId(): string {
    const id = this.get('agent_id');
    if (!id) throw new Error('registry has no agent_id (migration 001 not applied?)');
    return id;
  }

  heartbeat(): Heartbeat | undefined {
    const raw = this.get('heartbeat');
    if (!raw) return undefined;
    try {
      const v = JSON.parse(raw) as Heartbeat;
      return typeof v.pid === 'number' && typeof v.at === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  beat(pid: number, at: Date): void {
    this.set('heartbeat', JSON.stringify({ pid, at: at.toISOString() }));
  }
}
