import { fail, ok, type Outcome } from '@keel/kit';
import * as z from 'zod';
import { headSha, repoArg } from '../git/args.js';
import {
  commitResultSchema,
  describeCommit,
  findCommitByKey,
  messageWithKey,
  type CommitResult,
} from '../git/commit.js';
import { earlierCommit, noteInterrupted } from '../git/keyedStores.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { gitFailure } from '../git/runGit.js';
import type { Repo } from '../git/repo.js';
import { leavesWorkTree, refsOnlyChangeNoFiles } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/**
 * `git_commit`: commits the index. With an idempotency key the commit carries it in a
 * `Keel-Idempotency-Key:` trailer, so a call that crashed after committing is recognised on retry
 * (`reconcile`) instead of committing twice.
 */
export function gitCommitTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_commit',
    title: 'Commit',
    description:
      'Records the staged changes as a commit on the current branch. `all: true` first stages modified and deleted tracked files. Refuses to make an empty commit unless `allowEmpty: true`. Repository hooks do not run unless the server was started with --enable-hooks.',
    input: z.object({
      repo: repoArg,
      message: z
        .string()
        .min(1)
        .max(20_000)
        .regex(/^[^\x00]*$/, 'no NUL bytes')
        .describe('The commit message: a subject line, optionally a blank line and a body.'),
      all: z
        .boolean()
        .default(false)
        .describe(
          'Stage modified and deleted tracked files first (like git commit -a; new files still need git_add).',
        ),
      allowEmpty: z.boolean().default(false).describe('Allow a commit with no changes.'),
    }),
    output: commitResultSchema,
    effect: 'write',
    changesNoFiles: refsOnlyChangeNoFiles(options),
    paths: { repo: 'existing' },
    // The whole sha: a client that shows its model only text (the supervisor does) must let it name
    // the commit in full, as change.v1 asks.
    render: (out) =>
      `[${out.branch ?? 'detached HEAD'} ${out.sha}] ${out.subject}\n ${out.filesChanged} file(s) changed`,
    // Staging, commits, refs and fetches change no working-tree file: the preview is empty.
    plan: async (input, ctx) => {
      if (input.message.trim().length === 0)
        return fail('INVALID_ARGUMENT', 'the commit message is blank', {
          hint: 'Write a subject line that says what the change does.',
        });
      return leavesWorkTree(async () => {
        const repo = ctx.prepared;
        const key = ctx.idempotencyKey;
        // A retry whose stored result was lost (a wiped state dir, a replica without the shared store)
        // finds its commit by the trailer before any precondition can say "nothing is staged". The
        // history is searched unless only this call's store ever committed with a key here.
        if (key !== undefined) {
          const existing = await earlierCommit(repo, key, ctx.keyClaim);
          if (!existing.ok) return existing;
          if (existing.value !== undefined) return await replayOf(repo, existing.value, key, input.message);
        }
        // Cancelled, out of time or failed retryably once git ran: the commit may have landed, and
        // the kit frees such a call's key. Its retry must search, so that is noted first.
        const made = await commit(repo, input, key, options).then(
          (outcome) => ({ outcome }),
          (error: unknown) => ({ error }),
        );
        const interrupted = 'error' in made || (!made.outcome.ok && made.outcome.error.retryable);
        if (interrupted && key !== undefined) {
          const noted = noteInterrupted(repo, key);
          if (!noted.ok) return noted;
        }
        if ('error' in made) throw made.error;
        return made.outcome;
      });
    },
    reconcile: async (_input, ctx) => {
      if (ctx.idempotencyKey === undefined) return { status: 'not_done' };
      const sha = await findCommitByKey(ctx.prepared, ctx.idempotencyKey);
      if (sha === undefined) return { status: 'not_done' };
      const described = await describeCommit(ctx.prepared, sha, ctx.idempotencyKey);
      return described.ok
        ? { status: 'done', value: described.value }
        : { status: 'failed', error: described.error };
    },
  });
}

/** Commits the index, and describes the commit made. */
async function commit(
  repo: Repo,
  input: { message: string; all: boolean; allowEmpty: boolean },
  key: string | undefined,
  options: ResolvedGitOptions,
): Promise<Outcome<CommitResult>> {
  const before = await headSha(repo);
  const args = ['commit', '--quiet', '--file=-', '--cleanup=whitespace', '--no-edit'];
  if (!options.enableHooks) args.push('--no-verify');
  if (input.all) args.push('--all');
  if (input.allowEmpty) args.push('--allow-empty');
  const result = await repo.git(args, { stdin: messageWithKey(input.message, key) });
  if (result.exitCode !== 0) {
    const text = `${result.stdout}\n${result.stderr}`;
    if (/nothing to commit|no changes added to commit|nothing added to commit/.test(text)) {
      return fail(
        'PRECONDITION_FAILED',
        `nothing is staged in '${repo.display}', so the commit would be empty`,
        {
          hint: 'Stage changes with git_add (or pass all: true for tracked files), or pass allowEmpty: true for an intentionally empty commit.',
        },
      );
    }
    if (/Please tell me who you are|empty ident|unable to auto-detect email/.test(text)) {
      return fail('PRECONDITION_FAILED', `no author identity is configured for '${repo.display}'`, {
        hint: 'Set user.name and user.email in the repository (git config user.name "…") or in your global git config (~/.gitconfig; the server reads those two values unless started with --no-global-identity), or start the server with --git-user-name and --git-user-email, or with --use-global-config to read the whole global config.',
      });
    }
    return gitFailure('git commit', result);
  }
  const after = await headSha(repo);
  if (after === undefined || after === before)
    return fail('INTERNAL', 'git commit succeeded but HEAD did not move');
  return await describeCommit(repo, after, key);
}

/** The commit an earlier call with this key made, unless the key now comes with another message. */
async function replayOf(
  repo: Repo,
  sha: string,
  key: string,
  message: string,
): Promise<Outcome<CommitResult>> {
  const described = await describeCommit(repo, sha, key);
  if (!described.ok) return described;
  const subject = message.trim().split('\n')[0]!.trim();
  if (described.value.subject !== subject) {
    return fail(
      'IDEMPOTENCY_KEY_REUSED',
      `idempotency key '${key}' already made commit ${sha.slice(0, 12)} ('${described.value.subject}') with another message`,
      { hint: 'Use a new key for a different commit; reuse a key only to retry the exact same call.' },
    );
  }
  return ok({ ...described.value, replayed: true });
}
