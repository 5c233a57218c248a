/**
 * Opens the registry file: creates it 0600 if missing (only when asked), sets the pragmas, and
 * brings the schema up to date from migrations/NNN_*.sql (each in one transaction, PRAGMA
 * user_version = NNN). A registry appears at its path only complete: it is made under a temporary
 * name beside it and linked into place, so a 0-byte file is never one being created.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryError } from '../errors.js';
import { diskCause, RegistryUnwritableError } from './write-guard.js';

export type Db = Database.Database;

/** migrations/ sits two levels above this file both in src/registry and in dist/registry. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/**
 * better-sqlite3 finds its addon through `bindings`, which probes a dozen paths and parses a stack
 * trace to do it (5-15 ms of each CLI call): name the usual build when it is there, else let it search.
 */
let addon: string | null | undefined;
function nativeBinding(): string | undefined {
  if (addon === undefined) {
    try {
      const path = join(dirname(createRequire(import.meta.url).resolve('better-sqlite3')), '../build/Release/better_sqlite3.node');
      addon = existsSync(path) ? path : null;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The migrations in dir, in order. A migration's SQL is read when asked for: every open checks
 * the schema version against the list, and only a registry behind it runs any (reading all the
 * files was ~3 ms of each CLI call).
 */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const list = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => {
      let sql: string | undefined;
      return {
        version: Number(f.slice(0, 3)),
        name: f,
        get sql(): string {
          return (sql ??= readFileSync(`${dir}/${f}`, 'utf8'));
        },
      };
    });
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new RegistryError(`migrations are not numbered 001.. without gaps: ${m.name}`);
  });
  return list;
}

export interface OpenOptions {
  readonly?: boolean;
  /**
   * Create the registry (and its directory) when the file is missing; default true. The CLI asks
   * for it only in `apply` and `run`: elsewhere a missing file is a typo'd path, not a new node.
   */
  create?: boolean;
  migrationsDir?: string;
  /** With readonly: read an older schema as it is instead of refusing it (a dry run migrates nothing). */
  asIs?: boolean;
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
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) {
    if (opts.readonly || opts.create === false) {
      throw new RegistryError(`no registry at ${path}: create one with \`agent apply\` or \`agent run\`, or check --db / AGENT_DB`);
    }
    createRegistry(path, opts);
  } else if (st.isFile() && st.size === 0) {
    // Never one being created (see createRegistry): a truncated file. A new one would get a new
    // agent id and leave the old id's workloads running unmanaged.
    throw new RegistryError(`${path} is empty: not a registry (restore it from a backup, or remove it to start a new registry with a new agent id)`);
  }
  let db: Db;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: true, nativeBinding: nativeBinding() });
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
    if (!(opts.readonly && opts.asIs)) migrate(db, path, migrations);
    if (!opts.readonly) {
      for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    }
    return db;
  } catch (err) {
    db.close();
    if (err instanceof RegistryError) throw err;
    const msg = (err as Error).message;
    const cause = diskCause(err);
    if (cause) throw new RegistryUnwritableError(path, cause, msg);
    if (/file is not a database|file is encrypted/i.test(msg)) {
      throw new RegistryError(`${path} is not an agent registry: not an SQLite database`, { cause: err });
    }
    throw new RegistryError(`cannot use registry ${path}: ${msg}`, { cause: err });
  }
}

/**
 * Makes a new registry under a temporary name in the same directory (migrated, in WAL mode, 0600),
 * then links it into place: another process sees no file or a whole registry. EEXIST means another
 * process made one first: theirs is used.
 */
function createRegistry(path: string, opts: OpenOptions): void {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new RegistryError(`cannot create registry ${path}: ${(err as Error).message}`, { cause: err });
  }
  const tmp = join(dir, `.${basename(path)}.new-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    // Create the file ourselves so it is 0600 from the first byte, whatever the umask.
    closeSync(openSync(tmp, 'wx', 0o600));
    const db = new Database(tmp, { fileMustExist: true, nativeBinding: nativeBinding() });
    try {
      db.pragma('journal_mode = WAL');
      migrate(db, path, readMigrations(opts.migrationsDir));
    } finally {
      db.close(); // checkpoints and removes tmp-wal: the file alone is the whole registry
    }
    linkInto(tmp, path);
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    const cause = diskCause(err);
    if (cause) throw new RegistryUnwritableError(path, cause, (err as Error).message);
    throw new RegistryError(`cannot create registry ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  }
}

function linkInto(tmp: string, path: string): void {
  try {
    linkSync(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    // A filesystem without hard links: rename, unless someone made one meanwhile (a narrow race).
    if ((code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') && !existsSync(path)) return renameSync(tmp, path);
    throw err;
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

/**
 * Each migration in its own transaction, with foreign keys off (SQLite's procedure for rebuilding
 * a table: dropping a parent with them on would cascade into its children), and checked before
 * the commit: a migration that leaves a dangling reference is rolled back.
 */
function migrate(db: Db, path: string, migrations: Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const pending = migrations.slice(current);
  if (pending.length === 0) return;
  if (db.readonly) throw new RegistryError(`${path} needs migration ${pending[0]!.name}; open it read-write once`);
  const fk = db.pragma('foreign_keys', { simple: true }) as number;
  db.pragma('foreign_keys = OFF'); // only outside a transaction does this take effect
  try {
    for (const m of pending) {
      const run = db.transaction(() => {
        db.exec(m.sql);
        const dangling = db.pragma('foreign_key_check') as unknown[];
        if (dangling.length > 0) throw new Error(`leaves ${dangling.length} row(s) referencing a missing parent`);
        db.pragma(`user_version = ${m.version}`);
      });
      try {
        run.immediate();
      } catch (err) {
        throw new RegistryError(`migration ${m.name} failed on ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    db.pragma(`foreign_keys = ${fk ? 'ON' : 'OFF'}`);
  }
}
