import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';

// Loaded on first use: the native module and the database file cost start-up time a read-only
// session never needs.
const require = createRequire(import.meta.url);

/** Opens a better-sqlite3 database, loading the native module on first use. */
export function openSqlite(file: string): Database.Database {
  const Sqlite = require('better-sqlite3') as typeof Database;
  return new Sqlite(file);
}

/**
 * The directory where a server keeps its durable state: `--state-dir`, else `KEEL_STATE_DIR`, else
 * `$XDG_STATE_HOME/keel` (by default `~/.local/state/keel`). Several servers may share one.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (env['KEEL_STATE_DIR']) return path.resolve(env['KEEL_STATE_DIR']);
  const base = env['XDG_STATE_HOME'] || path.join(homedir(), '.local', 'state');
  return path.join(base, 'keel');
}

export interface StateDatabase {
  db: Database.Database;
  dir: string;
  /** The secret that signs cursors, kept in the state dir so cursors outlive a restart. */
  cursorSecret: Buffer;
  close(): void;
}

/**
 * Opens (creating when needed) `keel.db` in `dir`: WAL so readers never block the writer, a busy
 * timeout so processes sharing the file wait rather than fail, and synchronous=NORMAL, which in WAL
 * mode survives a killed process (not a power cut of the last commits).
 */
export function openStateDatabase(dir: string): StateDatabase {
  const state = openStateDir(dir);
  const db = state.database();
  return { db, dir, cursorSecret: state.cursorSecret, close: () => state.close() };
}

export interface StateDir {
  dir: string;
  cursorSecret: Buffer;
  /** The state database, opened on the first call. */
  database(): Database.Database;
  close(): void;
}

/**
 * Prepares a state directory now (created, writable, cursor secret in place, so a bad
 * `--state-dir` fails at start) and opens its database only when first asked.
 */
export function openStateDir(dir: string): StateDir {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  accessSync(dir, constants.W_OK);
  const cursorSecret = loadSecret(path.join(dir, 'cursor.key'));
  let db: Database.Database | undefined;
  return {
    dir,
    cursorSecret,
    database() {
      if (db === undefined) {
        const file = path.join(dir, 'keel.db');
        ownerOnly(file);
        const opened = openSqlite(file);
        try {
          configure(opened);
        } catch (error) {
          opened.close();
          throw error;
        }
        db = opened;
      }
      return db;
    },
    close() {
      db?.close();
      db = undefined;
    },
  };
}

/**
 * The busy timeout comes first so every later statement waits for other processes. WAL is a
 * property of the file: only its first opener switches it, and that switch fails at once (no busy
 * wait) while another process is writing, so it is retried briefly.
 */
function configure(db: Database.Database): void {
  db.pragma('busy_timeout = 10000');
  enableWal(db);
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

/**
 * Switches the file to WAL unless it is already. Only its first opener switches it, and the switch
 * fails at once (SQLite's busy timeout does not cover it) while another process holds the file's
 * lock — several processes opening a new store together — so it is retried briefly (50 × 20 ms).
 */
export function enableWal(db: Database.Database): void {
  for (let attempt = 0; db.pragma('journal_mode', { simple: true }) !== 'wal'; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
    } catch (error) {
      if (!isBusy(error) || attempt >= 50) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** Whether an error is SQLite saying another connection holds the lock. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    code === 'SQLITE_BUSY' ||
    code === 'SQLITE_LOCKED' ||
    (typeof code === 'string' && code.startsWith('SQLITE_BUSY_'))
  );
}

/**
 * Creates the database file readable by its owner only before SQLite opens it (SQLite gives its
 * -wal and -shm files the database's mode), and tightens one an older version left 0644.
 */
function ownerOnly(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const part of [file, `${file}-wal`, `${file}-shm`]) {
    const mode = statSync(part, { throwIfNoEntry: false })?.mode;
    if (mode !== undefined && (mode & 0o077) !== 0) chmodSync(part, mode & 0o700);
  }
}

function loadSecret(file: string): Buffer {
  try {
    const existing = readFileSync(file);
    if (existing.length >= 32) return existing;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32);
  try {
    // 'wx' so two processes starting together agree on the first secret written.
    writeFileSync(file, secret, { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    chmodSync(file, 0o600);
    return readFileSync(file);
  }
}
