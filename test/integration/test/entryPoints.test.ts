import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { importEffects } from '@keel/testing';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const here = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const server = (name: string) => pathToFileURL(path.join(repo, 'servers', name, 'dist', 'index.js')).href;

// Every entry point a library user imports. Importing must do nothing: no output, no files, no
// handles or timers left behind, and the process ends by itself (the bins are the only edges).
const entries = [
  '@keel/kit',
  '@keel/kit/cli',
  '@keel/kit/transports',
  '@keel/kit/otel',
  '@keel/kit/approval',
  '@keel/kit/conformance',
  server('filesystem'),
  server('git'),
  server('test-runner'),
  server('deploy'),
];

describe('importing an entry point has no side effects', () => {
  it.each(entries)('%s', async (specifier) => {
    const effects = await importEffects(specifier, here);
    expect(effects).toEqual({ resources: [], stdout: '', stderr: '', files: [], exited: true });
  });
});
