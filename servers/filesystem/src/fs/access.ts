import type { Outcome, ResolvedPath, ToolContext } from '@keel/kit';
import { ok } from '@keel/kit';
import type { FsPolicy } from './policy.js';

/** What every tool of this server is built with. */
export interface FsDeps {
  policy: FsPolicy;
  /** The `rg` binary search_text pre-selects files with, or undefined for the JavaScript search alone. */
  ripgrep: () => string | undefined;
  /** How many files a search_text walk meets before ripgrep takes over (fewer: JavaScript searches them). */
  ripgrepMinFiles: number;
}

export interface Checked {
  resolved: ResolvedPath;
  /** The path as the caller should read it (relative to the root when there is one root). */
  shown: string;
}

/** A resolved path held to the server's policy for `access`, with the way results show it. */
export function checkResolved(
  ctx: ToolContext,
  deps: FsDeps,
  resolved: ResolvedPath,
  access: 'read' | 'write',
): Outcome<Checked> {
  const shown = ctx.jail.display(resolved.real);
  const verdict =
    access === 'read'
      ? deps.policy.checkRead(resolved.real, resolved.root, shown)
      : deps.policy.checkWrite(resolved.real, resolved.root, shown);
  if (!verdict.ok) return verdict;
  return ok({ resolved, shown });
}
