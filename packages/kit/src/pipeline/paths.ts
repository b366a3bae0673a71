import type { PathMode } from '../defineTool.js';
import { ok, toolError, type Outcome } from '../errors.js';
import type { PathJail, ResolvedPath } from '../jail.js';

export type ResolvedPaths = Map<string, ResolvedPath | ResolvedPath[]>;

/**
 * Jail: every declared path field (a string or a string array) resolved inside the roots, else
 * OUTSIDE_ROOTS naming the field; an `existing` path that is missing is NOT_FOUND.
 */
export async function resolveDeclaredPaths(
  paths: Readonly<Partial<Record<string, PathMode>>>,
  input: Record<string, unknown>,
  jail: PathJail,
): Promise<Outcome<ResolvedPaths>> {
  const resolved: ResolvedPaths = new Map();
  for (const [field, mode] of Object.entries(paths)) {
    const value = input[field];
    if (value === undefined) continue;
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    const out: ResolvedPath[] = [];
    for (const item of values) {
      const result = await jail.resolve(String(item));
      if (!result.ok)
        return { ok: false, error: { ...result.error, details: { ...result.error.details, field } } };
      if (mode === 'existing' && !result.value.exists) {
        return {
          ok: false,
          error: toolError('NOT_FOUND', `${field} '${String(item)}' does not exist`, {
            hint: 'Check the path; list the parent directory to see what is there.',
            details: { field, path: String(item) },
          }),
        };
      }
      out.push(result.value);
    }
    resolved.set(field, Array.isArray(value) ? out : out[0]!);
  }
  return ok(resolved);
}
