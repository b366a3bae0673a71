import { fail, ok, type Outcome, type ToolContext } from '@keel/kit';
import { scanTree, type Manifest } from '../build/manifest.js';
import type { EnvironmentConfig } from '../config/config.js';

/**
 * The build directory's real path, which must lie inside the roots like every path a tool touches:
 * a `dist` that is a symlink to elsewhere is refused rather than deployed.
 */
export async function resolveBuild(env: EnvironmentConfig, ctx: ToolContext): Promise<Outcome<string>> {
  const resolved = await ctx.jail.resolve(env.build);
  if (!resolved.ok) {
    return fail(
      resolved.error.code,
      `the build directory '${env.buildAsWritten}' of '${env.name}': ${resolved.error.message}`,
      {
        hint: 'The build output must be a directory inside the project root (--root), not a link out of it.',
      },
    );
  }
  if (!resolved.value.exists) return buildMissing(env);
  return ok(resolved.value.real);
}

/** The build path to hand a target command: the resolved one, else as configured. */
export async function buildPathOr(env: EnvironmentConfig, ctx: ToolContext): Promise<string> {
  const build = await resolveBuild(env, ctx);
  return build.ok ? build.value : env.build;
}

/** The build's manifest, or undefined when the directory went away meanwhile. */
export async function scanBuild(
  dir: string,
  maxFiles: number,
  signal: AbortSignal,
): Promise<Manifest | undefined> {
  return await scanTree(dir, maxFiles, signal).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  });
}

export function buildMissing(env: EnvironmentConfig) {
  return fail('NOT_FOUND', `the build directory '${env.buildAsWritten}' of '${env.name}' does not exist`, {
    hint: 'Run the build first; the deploy config names its output directory.',
  });
}
