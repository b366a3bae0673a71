import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server the shared-store tests use: KEEL_TEST_DATABASE_URL (.ci/run starts one).
 * Outside CI its absence skips those tests, saying so; under CI it fails the run.
 */
export const testDatabaseUrl = process.env['KEEL_TEST_DATABASE_URL'];
if (testDatabaseUrl === undefined && process.env['CI'] === 'true')
  throw new Error('KEEL_TEST_DATABASE_URL is not set: .ci/run starts a PostgreSQL server for these tests');
export const noPostgres =
  testDatabaseUrl === undefined
    ? 'KEEL_TEST_DATABASE_URL is not set (a PostgreSQL server for the shared-store tests)'
    : '';

/** A fresh empty database on the test server; `drop` removes it (with any connection still open). */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `keel_kit_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(testDatabaseUrl!);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
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
