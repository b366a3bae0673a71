import type { DecodeJson } from './rows.js';

/** What differs between the SQL backends besides how statements run. */
export interface Dialect {
  /** How a JSON column reads back: SQLite gives text, PostgreSQL's jsonb arrives parsed. */
  decode: DecodeJson;
  /** A boolean as a value to bind (better-sqlite3 binds no booleans). */
  bool(value: boolean): unknown;
  /**
   * Row locks for the reads a transaction decides on, appended to its SELECT; null where the
   * transaction itself serialises every writer (SQLite's IMMEDIATE holds the database's write lock).
   */
  locks: { update: string; share: string; skipLocked: string } | null;
  /**
   * The event chain's head inside an append's transaction (a row `{ seq, hash }`, or none before
   * the first event), and the statement that moves it after an insert (`seq`, `hash`), if any.
   */
  chain: { head: string; advance: string | null };
  /**
   * Where finished tasks' figures are read: a table or a derived table named `task_summaries` with
   * the columns of SQLite's (task_id, type, mode, status, created_at, latency_ms, steps,
   * input_tokens, output_tokens, cost_usd, approvals_asked, tool_calls).
   */
  summaries: string;
  /** Whether a statement failed on a UNIQUE constraint. */
  uniqueViolation(error: unknown): boolean;
}
