import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { onTestFinished } from 'vitest';

/**
 * The PostgreSQL server the shared-store tests use: KEEL_TEST_DATABASE_URL (.ci/run starts one).
 * Outside CI its absence skips those tests with the reason; under CI it fails the run.
 */
export const testDatabaseUrl = process.env['KEEL_TEST_DATABASE_URL'];
if (testDatabaseUrl === undefined && process.env['CI'] === 'true')
  throw new Error('KEEL_TEST_DATABASE_URL is not set: .ci/run starts a PostgreSQL server for these tests');

/** A fresh database on the test server, dropped when the test ends; returns its URL. */
export async function freshDatabase(prefix = 'keel_test'): Promise<string> {
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  onTestFinished(async () => {
    const drop = new pg.Client({ connectionString: testDatabaseUrl });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await drop.end();
  });
  const url = new URL(testDatabaseUrl!);
  url.pathname = `/${name}`;
  return url.toString();
}

/** One statement on its own connection to `url`, as an administrator would run it; the rows it returns. */
export async function sql<TRow = Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<TRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as TRow[];
  } finally {
    await client.end();
  }
}
