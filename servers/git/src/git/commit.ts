import { ok, type Outcome } from '@keel/kit';
import * as z from 'zod';
import { currentBranch } from './args.js';
import type { Repo } from './repo.js';
import { gitFailure } from './runGit.js';

/** The trailer that ties a commit to the idempotency key of the call that made it. */
export const idempotencyTrailer = 'Keel-Idempotency-Key';

export const commitResultSchema = z.object({
  repo: z.string(),
  branch: z.string().nullable().describe('The branch the commit is on; null when HEAD is detached.'),
  sha: z.string(),
  parents: z.array(z.string()),
  subject: z.string(),
  files: z.array(z.string()).describe('Files the commit changed (first 200).'),
  filesChanged: z.number(),
  idempotencyKey: z.string().optional().describe('The key stamped in the commit trailer.'),
  replayed: z
    .boolean()
    .optional()
    .describe('true when a commit carrying this idempotency key already existed and was returned instead.'),
});
export type CommitResult = z.output<typeof commitResultSchema>;

/**
 * Appends the key trailer. When the message already ends in a trailer block (Signed-off-by: …) the
 * key joins that block, so the existing trailers stay trailers.
 */
export function messageWithKey(message: string, key: string | undefined): string {
  const body = message.replace(/\s+$/, '');
  if (key === undefined) return `${body}\n`;
  const paragraphs = body.split(/\n\s*\n/);
  const last = paragraphs.at(-1) ?? '';
  const lastIsTrailers =
    paragraphs.length > 1 && last.split('\n').every((line) => /^[A-Za-z0-9-]+: \S/.test(line));
  return `${body}${lastIsTrailers ? '\n' : '\n\n'}${idempotencyTrailer}: ${key}\n`;
}

/** Describes a commit the way git_commit answers. */
export async function describeCommit(
  repo: Repo,
  sha: string,
  key: string | undefined,
): Promise<Outcome<CommitResult>> {
  // One process for both: the header `parents NUL subject NUL` and -z's record NUL, then (when the
  // commit changed files) a newline and each name NUL-terminated.
  const shown = await repo.git([
    'show',
    '--format=%P%x00%s%x00',
    '--name-only',
    '-z',
    '--no-renames',
    '--diff-merges=first-parent',
    sha,
  ]);
  if (shown.exitCode !== 0) return gitFailure('reading the new commit', shown);
  const [parents = '', subject = '', , ...listed] = shown.stdout.split('\0');
  if (listed[0]?.startsWith('\n')) listed[0] = listed[0].slice(1);
  const names = listed.filter((name) => name.length > 0);
  return ok({
    repo: repo.display,
    branch: (await currentBranch(repo)) ?? null,
    sha,
    parents: parents.split(' ').filter(Boolean),
    subject,
    files: names.slice(0, 200),
    filesChanged: names.length,
    ...(key === undefined ? {} : { idempotencyKey: key }),
  });
}

/** A commit whose message carries the key trailer: its sha, committer time (ms) and trailer values. */
export interface KeyedCommit {
  sha: string;
  at: number;
  keys: string[];
}

/**
 * The commits on any branch whose message holds `grep` (a fixed string; by default any key trailer),
 * with their key trailers' values; `complete` is false when git failed or its output was cut.
 */
export async function keyedCommits(
  repo: Repo,
  grep = `${idempotencyTrailer}: `,
): Promise<{ commits: KeyedCommit[]; complete: boolean }> {
  const result = await repo.git([
    'log',
    '--all',
    '--fixed-strings',
    `--grep=${grep}`,
    `--format=%H%x00%ct%x00%(trailers:key=${idempotencyTrailer},valueonly,separator=%x01)%x00`,
  ]);
  if (result.exitCode !== 0) return { commits: [], complete: false };
  const tokens = result.stdout.split('\0');
  const commits: KeyedCommit[] = [];
  for (let i = 0; i + 2 < tokens.length; i += 3) {
    commits.push({
      sha: tokens[i]!.replace(/^\n+/, ''),
      at: Number(tokens[i + 1]) * 1000,
      keys: tokens[i + 2]!.split('\x01').map((value) => value.trim()),
    });
  }
  return { commits, complete: !result.cut };
}

/** Finds the commit that carries `key` in its trailer, on any branch; the exact value is compared, not a substring. */
export async function findCommitByKey(repo: Repo, key: string): Promise<string | undefined> {
  const { commits } = await keyedCommits(repo, `${idempotencyTrailer}: ${key}`);
  return commits.find((commit) => commit.keys.includes(key))?.sha;
}
