/**
 * Opens the registry file: creates it 0600 if missing, sets the pragmas, and brings the schema
 * up to date from migrations/NNN_*.sql (each in one transaction, PRAGMA user_version = NNN).
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryError } from '../errors.js';

export type Db = Database.Database;

/** migrations/ sits two levels above this file both in src/registry and in dist/registry. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const list = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f, sql: readFileSync(`${dir}/${f}`, 'utf8') }));
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new RegistryError(`migrations are not numbered 001.. without gaps: ${m.name}`);
  });
  return list;
}

export interface OpenOptions {
  readonly?: boolean;
  migrationsDir?: string;
}

/**
 * Opening can meet SQLITE_BUSY where busy_timeout does not help (switching a brand-new file to
 * WAL needs it to itself; two processes creating the registry at once race on the migration):
 * retry for a few seconds, then report.
 */
export function openDatabase(path: string, opts: OpenOptions = {}): Db {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return openOnce(path, opts);
    } catch (err) {
      const busy = err instanceof RegistryError && /database is locked|SQLITE_BUSY/i.test(err.message);
      if (!busy || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50 + Math.random() * 100);
    }
  }
}

function openOnce(path: string, opts: OpenOptions): Db {
  if (!opts.readonly && !existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    // Create the file ourselves so it is 0600 from the first byte, whatever the umask.
    closeSync(openSync(path, 'a', 0o600));
  }
  let db: Db;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new RegistryError(`cannot open registry ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    const migrations = readMigrations(opts.migrationsDir);
    // Refuse a foreign or newer file before anything is written to it (even the WAL switch).
    checkIsOurs(db, path, migrations.length);
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    migrate(db, path, migrations);
    if (!opts.readonly) {
      for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    }
    return db;
  } catch (err) {
    db.close();
    if (err instanceof RegistryError) throw err;
    const msg = (err as Error).message;
    if (/file is not a database|file is encrypted/i.test(msg)) {
      throw new RegistryError(`${path} is not an agent registry: not an SQLite database`, { cause: err });
    }
    throw new RegistryError(`cannot use registry ${path}: ${msg}`, { cause: err });
  }
}

function checkIsOurs(db: Db, path: string, latest: number): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > latest) {
    throw new RegistryError(
      `${path} has registry schema version ${current}, newer than this agent supports (${latest}): upgrade the agent`,
    );
  }
  if (current === 0) {
    // A fresh file has no tables. A file with tables but no version is someone else's database.
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number };
    if (tables.n > 0) throw new RegistryError(`${path} is not an agent registry: it has tables but no schema version`);
  }
}

function migrate(db: Db, path: string, migrations: Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (const m of migrations.slice(current)) {
    if (db.readonly) throw new RegistryError(`${path} needs migration ${m.name}; open it read-write once`);
    const run = db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    });
    try {
      run.immediate();
    } catch (err) {
      throw new RegistryError(`migration ${m.name} failed on ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}
