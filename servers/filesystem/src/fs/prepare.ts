import { ok, type PrepareStep, type ResolvedPath } from '@keel/kit';
import type { FsPolicy } from './policy.js';

/**
 * The filesystem server's `prepare` step: every declared path of every tool is held to the deny
 * policy (and, for a tool that writes, to the `.git/` guard) before the handler runs, so a tool that
 * forgets to check cannot bypass `--deny`. Read tools are checked for reading, the others for
 * writing. Tools still judge the paths they find themselves (walk entries, patch targets).
 */
export function filesystemPrepare(policy: FsPolicy): PrepareStep {
  return (call) => {
    const write = call.effect !== 'read';
    for (const value of call.paths.values()) {
      const list: readonly ResolvedPath[] = Array.isArray(value) ? value : [value as ResolvedPath];
      for (const resolved of list) {
        const shown = call.jail.display(resolved.real);
        const verdict = write
          ? policy.checkWrite(resolved.real, resolved.root, shown)
          : policy.checkRead(resolved.real, resolved.root, shown);
        if (!verdict.ok) return verdict;
      }
    }
    return ok(undefined);
  };
}
