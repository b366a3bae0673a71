import { ok } from '@keel/kit';
import * as z from 'zod';
import { repoArg } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { refChanges, snapshotRefs } from '../git/refsSnapshot.js';
import { checkRemote } from '../git/remote.js';
import { gitFailure, transportPrograms } from '../git/runGit.js';
import { leavesWorkTree, refsOnlyChangeNoFiles } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

export const remoteArg = z
  .string()
  .min(1)
  .max(100)
  .default('origin')
  .describe('A configured remote name (default "origin"); URLs are not accepted.');
export const refChangeSchema = z.object({
  ref: z.string(),
  from: z.string().nullable(),
  to: z.string().nullable(),
});

/** `git_fetch`: updates remote-tracking branches from a configured remote whose URL the server allows. */
export function gitFetchTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_fetch',
    title: 'Git fetch',
    description:
      'Downloads commits and refs from a configured remote into remote-tracking branches. Does not touch local branches or the working tree.',
    input: z.object({
      repo: repoArg,
      remote: remoteArg,
      prune: z
        .boolean()
        .default(false)
        .describe('Delete remote-tracking branches that no longer exist on the remote.'),
    }),
    output: z.object({
      repo: z.string(),
      remote: z.string(),
      urls: z.array(z.string()),
      updated: z.array(refChangeSchema),
    }),
    effect: 'write',
    changesNoFiles: refsOnlyChangeNoFiles(options),
    openWorld: true,
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) =>
      [
        `fetched ${out.remote} (${out.urls.join(', ')})`,
        ...out.updated.map(
          (ref) =>
            `${ref.ref} ${ref.from?.slice(0, 12) ?? '(new)'} -> ${ref.to?.slice(0, 12) ?? '(deleted)'}`,
        ),
      ].join('\n'),
    // Staging, commits, refs and fetches change no working-tree file: the preview is empty.
    plan: async (input, ctx) =>
      leavesWorkTree(async () => {
        const repo = ctx.prepared;
        const urls = await checkRemote(repo, input.remote, options, ctx.jail, 'fetch');
        if (!urls.ok) return urls;
        const prefix = `refs/remotes/${input.remote}/`;
        const before = await snapshotRefs(repo, prefix);
        const result = await repo.git([
          'fetch',
          transportPrograms.fetch,
          '--quiet',
          '--no-recurse-submodules',
          ...(input.prune ? ['--prune'] : []),
          '--end-of-options',
          input.remote,
        ]);
        if (result.exitCode !== 0)
          return gitFailure(
            `git fetch ${input.remote}`,
            result,
            'Check that the remote is reachable and its URL is right.',
          );
        const updated = refChanges(before, await snapshotRefs(repo, prefix));
        return ok({ repo: repo.display, remote: input.remote, urls: urls.value, updated });
      }),
  });
}
