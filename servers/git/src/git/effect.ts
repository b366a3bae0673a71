import path from 'node:path';
import {
  KeelError,
  ok,
  type AnyTool,
  type Outcome,
  type PlannedEffect,
  type PlannedFile,
  type ToolPlan,
} from '@keel/kit';
import { withoutOwnFiles } from './args.js';
import { parseRawNumstat, type DiffFile } from './diff.js';
import type { Repo } from './repo.js';
import type { ResolvedGitOptions } from './options.js';
import { gitFailure } from './runGit.js';

/** Enough for the summary of a very large change; past it the preview says it is incomplete. */
const maxSummaryBytes = 8 * 1024 * 1024;

/** What `diff` yields for a preview: the files, and whether git's output was cut. */
export interface TreeChanges {
  files: PlannedFile[];
  cut: boolean;
}

/**
 * The working-tree files a change touches, from `git diff --raw --numstat -z --no-renames` over
 * `revs` (the same comparison git makes when it checks the files out): each path created, deleted,
 * modified or changed in mode alone, with its lines. A rename on disk is a delete and a create, as
 * the checkout does it. `reverse` when the diff runs from the target to the work tree as it is
 * (`git diff <commit>`): the effect is the other way round. Keel's own files are left out.
 */
export async function treeChanges(
  repo: Repo,
  revs: readonly string[],
  options: {
    reverse?: boolean;
    cached?: boolean;
    paths?: readonly string[];
    /** Where the files land, when not in this work tree (a new worktree or clone). */
    base?: string;
  } = {},
): Promise<Outcome<TreeChanges>> {
  const spec = withoutOwnFiles(repo, options.paths ?? []);
  const result = await repo.git(
    [
      'diff',
      '--raw',
      '--numstat',
      '-z',
      '--no-renames',
      '--no-ext-diff',
      '--no-textconv',
      '--ignore-submodules=all',
      ...(options.cached === true ? ['--cached'] : []),
      ...revs,
      '--',
      ...spec.args,
    ],
    { maxOutputBytes: maxSummaryBytes, ...(spec.env === undefined ? {} : { env: spec.env }) },
  );
  if (result.exitCode !== 0) return gitFailure('git diff (for the preview)', result);
  const base = options.base ?? repo.top;
  const files = result.cut
    ? []
    : parseRawNumstat(result.stdout).map((file) => plannedOf(base, file, options.reverse === true));
  return ok({ files, cut: result.cut });
}

function plannedOf(base: string, file: DiffFile, reverse: boolean): PlannedFile {
  const added = reverse ? file.deleted : file.added;
  const removed = reverse ? file.added : file.deleted;
  const change =
    file.status === 'added'
      ? reverse
        ? 'delete'
        : 'create'
      : file.status === 'deleted'
        ? reverse
          ? 'create'
          : 'delete'
        : // The same content with another mode: git reports it modified with no lines.
          file.status === 'modified' && !file.binary && file.added === 0 && file.deleted === 0
          ? 'mode'
          : 'modify';
  return {
    path: path.join(base, file.path),
    change,
    linesAdded: added ?? 0,
    linesRemoved: removed ?? 0,
    ...(file.binary ? { binary: true } : {}),
  };
}

/** The effect of a change whose summary may have been cut: what was listed, marked incomplete if so. */
export function effectOf(changes: TreeChanges, basis: readonly string[]): PlannedEffect {
  return {
    files: changes.files,
    basis,
    ...(changes.cut
      ? {
          complete: false,
          reason: `the change is too large to summarise (git diff wrote more than ${maxSummaryBytes} bytes)`,
        }
      : {}),
  };
}

/** The id of the empty tree in this repository's hash (sha1 or sha256): what an unborn branch holds. */
export async function emptyTree(repo: Repo): Promise<string> {
  const result = await repo.git(['hash-object', '-t', 'tree', '--stdin'], { stdin: '' });
  return result.stdout.trim();
}

/**
 * The plan of a tool that touches no working-tree file (staging, committing, refs, fetching): its
 * effect is the empty list, complete, whatever the call does, plus any fact beyond the files
 * (`irreversible`); applying it is the tool's own run.
 */
export function leavesWorkTree<TOutput>(
  run: () => Promise<Outcome<TOutput>>,
  extra: Omit<PlannedEffect, 'files'> = {},
): Outcome<ToolPlan<TOutput>> {
  return ok({ effect: () => ({ ...extra, files: [] }), apply: run });
}

/**
 * Whether a tool that only moves refs (commit, tag, branch, fetch) may declare `changesNoFiles`:
 * not with `--enable-hooks`, where a hook (pre-commit, post-commit, reference-transaction) is the
 * repository's own code and may change any file.
 */
export function refsOnlyChangeNoFiles(options: Pick<ResolvedGitOptions, 'enableHooks'>): boolean {
  return !options.enableHooks;
}

/** Why a preview under `--enable-hooks` is never the whole effect. */
export const hooksMayRunReason =
  "--enable-hooks: this call may run the repository's hooks (pre-commit, post-checkout, reference-transaction), which may change any file";

/**
 * Under `--enable-hooks`, the tool's previews say they may not be whole: git runs the repository's
 * own hooks for every write but staging (a restore runs post-checkout, a reset or a tag
 * reference-transaction), and a hook is code that may write any file. The files the tool itself
 * would change stay listed; the plan's `apply` is unchanged. One wrapper for every tool, so a tool
 * added later cannot forget it.
 */
export function withHooksMayRun<TPrepared>(tool: AnyTool<TPrepared>): AnyTool<TPrepared> {
  const { spec } = tool;
  const plan = spec.plan?.bind(spec);
  if (plan === undefined) return tool;
  return {
    ...tool,
    spec: {
      ...spec,
      plan: async (input, ctx) => {
        const planned = await plan(input, ctx);
        if (!planned.ok) return planned;
        const inner = planned.value;
        return ok({
          apply: () => inner.apply(),
          effect: async () => {
            const whole = await inner.effect();
            return {
              ...whole,
              complete: false,
              reason:
                whole.complete === false
                  ? `${whole.reason ?? 'incomplete'}; ${hooksMayRunReason}`
                  : hooksMayRunReason,
            };
          },
        });
      },
    },
  };
}

/**
 * The value of an outcome, or its error thrown as a KeelError: a plan's `effect()` returns the
 * effect itself, and the kit turns what it throws into the call's structured error.
 */
export function valueOf<TValue>(outcome: Outcome<TValue>): TValue {
  if (outcome.ok) return outcome.value;
  const { code, message, hint, retryable, details } = outcome.error;
  throw new KeelError(code, message, { hint, retryable, details });
}
