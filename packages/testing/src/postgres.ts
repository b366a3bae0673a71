import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { onTestFinished } from 'vitest';

/**
 * The PostgreSQL server shared-store tests use: KEEL_TEST_DATABASE_URL (.ci/run starts one). Outside
 * CI its absence skips those tests, saying so in their names; under CI it fails the run.
 */
export const testDatabaseUrl = process.env['KEEL_TEST_DATABASE_URL'];
if (testDatabaseUrl === undefined && process.env['CI'] === 'true')
  throw new Error('KEEL_TEST_DATABASE_URL is not set: .ci/run starts a PostgreSQL server for these tests');

/** Why PostgreSQL tests skip here, or '' when they run. */
export const noPostgres =
  testDatabaseUrl === undefined
    ? 'KEEL_TEST_DATABASE_URL is not set (a PostgreSQL server for the shared-store tests)'
    : '';

/** A fresh empty database on the test server, dropped (connections and all) when the test ends; its URL. */
export async function freshDatabase(prefix = 'keel_test'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  onTestFinished(() => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const url = new URL(testDatabaseUrl!);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
