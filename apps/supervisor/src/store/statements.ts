/**
 * How the store core talks to a database without knowing which: it yields statements, one at a
 * time, and the backend answers each (rows, one row, or a count of changed rows). SQLite answers
 * synchronously, so a whole piece of work runs inside one better-sqlite3 transaction; PostgreSQL
 * answers over a pooled client. The core's SQL uses `?` for each value, in order, and never
 * anywhere else (no `?` in a literal), so PostgreSQL can number them.
 */
export type Row = Record<string, unknown>;

export interface Statement {
  mode: 'all' | 'get' | 'run';
  sql: string;
  values: unknown[];
}

/** Store work: statements yielded to the backend, each resumed with its answer. */
export type Work<T> = Generator<Statement, T, unknown>;

/** Every row the statement returns. */
export function* all(sql: string, values: unknown[] = []): Work<Row[]> {
  return (yield { mode: 'all', sql, values }) as Row[];
}

/** The first row the statement returns, if any. */
export function* get(sql: string, values: unknown[] = []): Work<Row | undefined> {
  return (yield { mode: 'get', sql, values }) as Row | undefined;
}

/** How many rows the statement changed. */
export function* run(sql: string, values: unknown[] = []): Work<number> {
  return (yield { mode: 'run', sql, values }) as number;
}

/** Runs work to its end, answering each statement at once; a failed statement is thrown into the work. */
export function runSync<T>(work: Work<T>, answer: (statement: Statement) => unknown): T {
  let next = work.next();
  while (!next.done) {
    let result: unknown;
    try {
      result = answer(next.value);
    } catch (error) {
      next = work.throw(error);
      continue;
    }
    next = work.next(result);
  }
  return next.value;
}

/** Runs work to its end, awaiting each answer; a failed statement is thrown into the work. */
export async function runAsync<T>(
  work: Work<T>,
  answer: (statement: Statement) => Promise<unknown>,
): Promise<T> {
  let next = work.next();
  while (!next.done) {
    let result: unknown;
    try {
      result = await answer(next.value);
    } catch (error) {
      next = work.throw(error);
      continue;
    }
    next = work.next(result);
  }
  return next.value;
}

/** What a backend gives the core: work run statement by statement, or as one transaction. */
export interface Executor {
  /** Each statement on its own (reads, and single-statement writes). */
  execute<T>(work: Work<T>): Promise<T>;
  /**
   * All of the work or none, serialised against every other writer: SQLite in an IMMEDIATE
   * transaction (the database's write lock), PostgreSQL in a transaction whose row locks the
   * core asks for through the dialect.
   */
  transaction<T>(work: Work<T>): Promise<T>;
}
