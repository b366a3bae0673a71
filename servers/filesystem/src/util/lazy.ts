import { createRequire } from 'node:module';
import type Picomatch from 'picomatch';
import type Ignore from 'ignore';

// Glob, ignore and diff libraries load on first use, not at start: a server's cold start is on the
// path of every client launch, and most sessions never edit or search.
const require = createRequire(import.meta.url);

let picomatchModule: typeof Picomatch | undefined;
export function picomatch(): typeof Picomatch {
  picomatchModule ??= require('picomatch') as typeof Picomatch;
  return picomatchModule;
}

let ignoreModule: typeof Ignore | undefined;
export function ignore(): typeof Ignore {
  ignoreModule ??= require('ignore') as typeof Ignore;
  return ignoreModule;
}

export async function diff(): Promise<typeof import('diff')> {
  return await import('diff');
}
