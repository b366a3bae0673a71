import { readFileSync } from 'node:fs';

/**
 * The `version` of the package.json at `url` (e.g. `new URL('../package.json', import.meta.url)`
 * from a package's `dist/`): a server reports the version changesets gave it, not a copy.
 */
export function packageVersion(url: URL): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(url, 'utf8'));
  } catch (error) {
    throw new TypeError(`cannot read the package version from ${url.pathname}: ${(error as Error).message}`);
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (typeof version !== 'string') throw new TypeError(`${url.pathname} has no version`);
  return version;
}
