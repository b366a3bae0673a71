import { statSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { fail, ok, OWN_FILES_HINT, type Outcome, type PathJail } from '@keel/kit';
import type { ResolvedGitOptions } from './options.js';
import { gitFailure, runGit, type GitCall, type GitResult, type GitRunner } from './runGit.js';

/** A repository the jail allows: its work tree, git dir and common dir all resolve inside the roots. */
export interface Repo {
  /** Real path of the work tree's top level. */
  top: string;
  gitDir: string;
  commonDir: string;
  /** How results name the repository: relative to the root when there is one root. */
  display: string;
  /** The jail of the call that opened it, for the few files the server reads itself (HEAD, refs). */
  jail: PathJail;
  /** Runs git in the work tree with the hardening config and this repository's drivers neutralised. */
  git(args: readonly string[], call?: Omit<GitCall, 'cwd' | 'args' | 'overrides'>): Promise<GitResult>;
}

// Config keys naming a program the repository wants git to run, and the value that disarms each.
// (remote.<name>.uploadpack/receivepack keep their first value, so `-c` cannot override them: the
// transport tools pass --upload-pack / --receive-pack on the command line instead.)
const driverKeys: Record<string, string> = {
  'filter.clean': '',
  'filter.smudge': '',
  'filter.process': '',
  'filter.required': 'false',
  'diff.textconv': '',
  'diff.command': '',
  'merge.driver': '',
};
const maxCachedRepos = 256;
const safeSubsection = /^[A-Za-z0-9._/@+ -]{1,200}$/;

/**
 * The `-c` pairs that disarm every filter, diff and merge driver and every remote's upload/receive
 * program the repository's config (and what it includes) defines. These are named by the repository,
 * so they cannot be overridden blindly like the fixed hardening keys.
 */
export function driverOverrides(configNames: readonly string[]): Outcome<string[]> {
  const pairs: string[] = [];
  for (const name of configNames) {
    const first = name.indexOf('.');
    const last = name.lastIndexOf('.');
    if (first === -1 || last === first) continue;
    const section = name.slice(0, first).toLowerCase();
    const key = name.slice(last + 1).toLowerCase();
    const disarmed = driverKeys[`${section}.${key}`];
    if (disarmed === undefined) continue;
    const subsection = name.slice(first + 1, last);
    if (!safeSubsection.test(subsection)) {
      return fail(
        'PERMISSION_DENIED',
        `the repository config defines ${section} '${subsection}' with a name the server cannot neutralise`,
        {
          hint: `Rename or remove the [${section} "…"] section in the repository's config; names may use letters, digits and . _ / @ + - only.`,
        },
      );
    }
    // The driver's own keys are disarmed whether `filter.x.clean` or `filter.x.process` is the one set.
    for (const [compound, value] of Object.entries(driverKeys)) {
      if (compound.startsWith(`${section}.`))
        pairs.push(`${section}.${subsection}.${compound.slice(section.length + 1)}=${value}`);
    }
  }
  return ok([...new Set(pairs)]);
}

/**
 * Opens the repository that contains `dir` (already resolved in the jail). Refuses a repository whose
 * work tree or git dir lies outside the roots (`core.worktree`, a `.git` file pointing elsewhere, a
 * linked worktree of an outside repository).
 */
export async function openRepo(
  ctx: GitRunner,
  options: ResolvedGitOptions,
  dir: string,
): Promise<Outcome<Repo>> {
  const cached = options.repoCache.get(dir);
  if (
    cached !== undefined &&
    fingerprintOf(cached.top, cached.gitDir, cached.commonDir) === cached.fingerprint
  ) {
    // The jail can differ per call (client roots narrow it), so containment is checked every time.
    const outside = [cached.top, cached.gitDir, cached.commonDir].find(
      (real) => !ctx.jail.contains(real) || ctx.jail.isDenied(real),
    );
    if (outside === undefined)
      return ok(
        repoAt(
          ctx,
          options,
          cached.top,
          cached.gitDir,
          cached.commonDir,
          cached.overrides,
          cached.identityEnv,
        ),
      );
  }
  const [located, config] = await Promise.all([
    runGit(ctx, options, {
      cwd: dir,
      args: ['rev-parse', '--show-toplevel', '--absolute-git-dir', '--git-common-dir'],
      maxOutputBytes: 64 * 1024,
    }),
    runGit(ctx, options, {
      cwd: dir,
      args: ['config', '--list', '--name-only', '-z'],
      maxOutputBytes: 4 * 1024 * 1024,
    }),
  ]);
  const shown = ctx.jail.display(dir);
  if (located.exitCode !== 0) {
    if (/not a git repository/i.test(located.stderr)) {
      return fail('NOT_FOUND', `'${shown}' is not inside a git repository`, {
        hint: 'Pass the path of a repository inside the roots as `repo`, or create one with git_init or git_clone.',
      });
    }
    if (/must be run in a work tree|this operation must be run/i.test(located.stderr)) {
      return fail('INVALID_ARGUMENT', `'${shown}' is a bare repository or git dir, not a work tree`, {
        hint: 'Pass a work tree directory as `repo`.',
      });
    }
    return gitFailure(`opening the repository at '${shown}'`, located);
  }
  const [top, gitDir, commonRaw] = located.stdout.split('\n');
  if (top === undefined || top === '' || gitDir === undefined || commonRaw === undefined) {
    return fail('INVALID_ARGUMENT', `'${shown}' is not inside a git work tree`, {
      hint: 'Pass a work tree directory as `repo`; bare repositories are not served.',
    });
  }
  const commonDir = path.resolve(dir, commonRaw);
  const reals: string[] = [];
  for (const candidate of [top, gitDir, commonDir]) {
    const real = await realpath(candidate).catch(() => candidate);
    if (!ctx.jail.contains(real)) {
      return fail(
        'OUTSIDE_ROOTS',
        `the repository at '${shown}' uses '${real}', which is outside the roots`,
        {
          hint: 'Only repositories whose work tree and git directory are inside the roots are served; check core.worktree and the .git file.',
          details: { roots: [...ctx.jail.roots] },
        },
      );
    }
    // A repository whose git dir is a state dir would have git write Keel's own files.
    if (ctx.jail.isDenied(real)) {
      return fail(
        'PERMISSION_DENIED',
        `the repository at '${shown}' uses one of Keel's own files ('${real}')`,
        {
          hint: OWN_FILES_HINT,
          details: { path: shown },
        },
      );
    }
    reals.push(real);
  }
  const names = config.exitCode === 0 ? config.stdout.split('\0').filter((name) => name.length > 0) : [];
  const overrides = driverOverrides(names);
  if (!overrides.ok) return overrides;
  const identityEnv = globalIdentityEnv(options, names);
  const [realTop, realGitDir, realCommon] = reals as [string, string, string];
  // Only the plain case is remembered: the directory is the top level, no config file includes
  // another, and the user's global config (whose changes the fingerprint does not see) is off.
  if (dir === realTop && !options.useGlobalConfig && !names.some((name) => /^include(if)?\./i.test(name))) {
    if (options.repoCache.size >= maxCachedRepos)
      options.repoCache.delete(options.repoCache.keys().next().value!);
    options.repoCache.set(dir, {
      top: realTop,
      gitDir: realGitDir,
      commonDir: realCommon,
      overrides: overrides.value,
      identityEnv,
      fingerprint: fingerprintOf(realTop, realGitDir, realCommon),
    });
  } else {
    options.repoCache.delete(dir);
  }
  return ok(repoAt(ctx, options, realTop, realGitDir, realCommon, overrides.value, identityEnv));
}

/**
 * The author/committer variables for the parts of the global identity a repository lacks. Variables
 * rather than config: a repository's own user.name must still win, as it does in a terminal.
 */
function globalIdentityEnv(
  options: ResolvedGitOptions,
  configNames: readonly string[],
): Record<string, string> | undefined {
  const global = options.globalIdentity;
  if (global === undefined) return undefined;
  const has = (key: string) => configNames.some((name) => name.toLowerCase() === key);
  const env: Record<string, string> = {};
  if (global.name !== undefined && !has('user.name')) {
    env['GIT_AUTHOR_NAME'] = global.name;
    env['GIT_COMMITTER_NAME'] = global.name;
  }
  if (global.email !== undefined && !has('user.email')) {
    env['GIT_AUTHOR_EMAIL'] = global.email;
    env['GIT_COMMITTER_EMAIL'] = global.email;
  }
  return Object.keys(env).length === 0 ? undefined : env;
}

function repoAt(
  ctx: GitRunner,
  options: ResolvedGitOptions,
  top: string,
  gitDir: string,
  commonDir: string,
  overrides: readonly string[],
  identityEnv: Readonly<Record<string, string>> | undefined,
): Repo {
  return {
    top,
    gitDir,
    commonDir,
    display: ctx.jail.display(top),
    jail: ctx.jail,
    git: (args, call = {}) =>
      runGit(ctx, options, {
        ...call,
        cwd: top,
        args,
        overrides,
        ...(identityEnv === undefined ? {} : { env: { ...identityEnv, ...call.env } }),
      }),
  };
}

/**
 * What must stay the same for a remembered location to hold: the `.git` entry of the top level (a
 * new repository or a re-pointed .git file changes it) and every config file git reads for it.
 */
function fingerprintOf(top: string, gitDir: string, commonDir: string): string {
  // Synchronous: five stats of local metadata take microseconds, five thread-pool round trips a
  // good part of a millisecond, on every call.
  return [
    path.join(top, '.git'),
    path.join(gitDir, 'commondir'),
    path.join(commonDir, 'config'),
    path.join(gitDir, 'config.worktree'),
    path.join(commonDir, 'config.worktree'),
  ]
    .map((file) => {
      const info = statSync(file, { bigint: true, throwIfNoEntry: false });
      if (info === undefined) return '-';
      // A .git directory changes its mtime with every index write; only its identity matters.
      return info.isDirectory() ? `d${info.ino}` : `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
    })
    .join('|');
}
