import { fail, ok, type Outcome, type ToolContext } from '@keel/kit';
import { linksLeaving, type LeavingLink } from '../build/links.js';
import { scanTree, type Manifest } from '../build/manifest.js';
import type { EnvironmentConfig } from '../config/config.js';
import { quotedName } from '../text/names.js';

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

/** Links named in a message or listed as warnings: enough to act on, bounded. */
const linksShown = 10;
const linkWarnings = 20;

function describeLink(link: LeavingLink): string {
  return `${quotedName(link.path)} -> ${quotedName(link.target)}${link.leaves === 'absolute' ? ' (an absolute path)' : ''}`;
}

/**
 * A build's symlinks must stay inside it: a link out of the build would publish whatever it points
 * at (a file of the project, of the machine). Refused naming them, unless the environment allows
 * them (`policy.allowExternalLinks`); then they are the plan's warnings, which the approver sees.
 */
export function checkLinks(env: EnvironmentConfig, manifest: Manifest): Outcome<string[]> {
  const leaving = linksLeaving(manifest);
  if (leaving.length === 0) return ok([]);
  if (env.policy.allowExternalLinks === true) {
    const warnings = leaving.slice(0, linkWarnings).map((link) => {
      const absolute = link.leaves === 'absolute' ? ' (an absolute path)' : '';
      return `the symlink ${quotedName(link.path)} -> ${quotedName(link.target)} leaves the build${absolute}; allowed by policy.allowExternalLinks, it is released as it is`;
    });
    if (leaving.length > linkWarnings)
      warnings.push(
        `${leaving.length - linkWarnings} more symlinks leave the build (allowed by policy.allowExternalLinks)`,
      );
    return ok(warnings);
  }
  const listed = leaving.slice(0, linksShown).map(describeLink).join(', ');
  const more = leaving.length > linksShown ? `, and ${leaving.length - linksShown} more` : '';
  return fail(
    'OUTSIDE_ROOTS',
    leaving.length === 1
      ? `the build '${env.buildAsWritten}' of '${env.name}' holds a symlink that leaves it: ${listed}`
      : `the build '${env.buildAsWritten}' of '${env.name}' holds ${leaving.length} symlinks that leave it: ${listed}${more}`,
    {
      hint: `Put the file itself in the build, or a link to a path inside it. If the target must get these links as they are, set policy.allowExternalLinks: true for '${env.name}'; plans then list them as warnings for the approver.`,
      details: { links: leaving.slice(0, 100) },
    },
  );
}
