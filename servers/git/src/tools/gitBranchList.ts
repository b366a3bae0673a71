import { budgetArg, cursorArg, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { repoArg } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_branch_list`: local (and optionally remote-tracking) branches with their commit and upstream state. */
export function gitBranchListTool(): GitTool {
  return defineRepoTool({
    name: 'git_branch_list',
    title: 'List git branches',
    description:
      'Lists local branches (and remote-tracking ones with `remotes: true`): name, commit, whether it is checked out, upstream and ahead/behind, last subject.',
    input: z.object({
      repo: repoArg,
      remotes: z.boolean().default(false).describe('Also list remote-tracking branches (refs/remotes).'),
      limit: budgetArg({ default: 200, max: 5000, unit: 'branches', what: 'branches' }),
      cursor: cursorArg,
    }),
    output: z.object({
      repo: z.string(),
      current: z.string().nullable().describe('The checked-out branch; null when HEAD is detached.'),
      branches: z.array(
        z.object({
          name: z.string(),
          remote: z.boolean(),
          sha: z.string(),
          current: z.boolean(),
          upstream: z.string().optional(),
          ahead: z.number().optional(),
          behind: z.number().optional(),
          gone: z.boolean().optional().describe('The upstream branch no longer exists.'),
          subject: z.string(),
        }),
      ),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) =>
      out.branches
        .map(
          (branch) =>
            `${branch.current ? '*' : ' '} ${branch.name} ${branch.sha.slice(0, 12)}${branch.upstream === undefined ? '' : ` [${branch.upstream}${branch.gone === true ? ': gone' : `: ahead ${branch.ahead ?? 0}, behind ${branch.behind ?? 0}`}]`} ${branch.subject}`,
        )
        .join('\n') || '(no branches)',
    handler: async (input, ctx) => {
      const repo = ctx.prepared;
      const format =
        '--format=%(refname)%00%(objectname)%00%(HEAD)%00%(upstream:short)%00%(upstream:track,nobracket)%00%(contents:subject)';
      const result = await repo.git([
        'for-each-ref',
        format,
        'refs/heads/',
        ...(input.remotes ? ['refs/remotes/'] : []),
      ]);
      if (result.exitCode !== 0) return gitFailure('git for-each-ref', result);
      const branches = result.stdout
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => {
          const [ref = '', sha = '', head = '', upstream = '', track = '', subject = ''] = line.split('\0');
          const remote = ref.startsWith('refs/remotes/');
          const ahead = /ahead (\d+)/.exec(track);
          const behind = /behind (\d+)/.exec(track);
          return {
            name: ref.replace(/^refs\/(heads|remotes)\//, ''),
            remote,
            sha,
            current: head === '*',
            ...(upstream === '' ? {} : { upstream }),
            ...(upstream === '' || track === 'gone'
              ? {}
              : { ahead: Number(ahead?.[1] ?? 0), behind: Number(behind?.[1] ?? 0) }),
            ...(track === 'gone' ? { gone: true } : {}),
            subject,
          };
        });
      const page = ctx.list(branches, { limit: input.limit, cursor: input.cursor });
      if (!page.ok) return page;
      return ok({
        repo: repo.display,
        current: branches.find((branch) => branch.current)?.name ?? null,
        branches: page.value.items,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
