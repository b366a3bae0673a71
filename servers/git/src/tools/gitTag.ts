import { budgetArg, cursorArg, fail, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { checkNewRefName, refArg, repoArg, resolveCommit } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { leavesWorkTree, refsOnlyChangeNoFiles } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';
import type { ResolvedGitOptions } from '../git/options.js';

const tagSchema = z.object({
  name: z.string(),
  sha: z.string().describe('The commit the tag points to.'),
  annotated: z.boolean(),
  subject: z.string(),
});

const tagOutput = z.object({
  repo: z.string(),
  action: z.enum(['create', 'list']),
  created: z.boolean().optional(),
  tag: tagSchema.optional(),
  tags: z.array(tagSchema).optional(),
  truncated: truncationSchema.optional(),
});

/** `git_tag`: creates a tag (lightweight, or annotated with a message) or lists tags. */
export function gitTagTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_tag',
    title: 'Git tag',
    description:
      'action "create": tags `target` (default HEAD) as `name`; with `message` the tag is annotated. Creating a tag that already points at the same commit succeeds with created: false. action "list": lists tags, newest name order.',
    input: z.object({
      repo: repoArg,
      action: z.enum(['create', 'list']).describe('"create" or "list".'),
      name: z.string().min(1).max(250).optional().describe('create: the tag name, e.g. "v1.2.0".'),
      target: refArg('create: the commit to tag; default HEAD.').default('HEAD'),
      message: z
        .string()
        .min(1)
        .max(20_000)
        .regex(/^[^\x00]*$/, 'no NUL bytes')
        .optional()
        .describe('create: makes an annotated tag with this message.'),
      limit: budgetArg({ default: 200, max: 5000, unit: 'tags', what: 'tags' }),
      cursor: cursorArg,
    }),
    output: tagOutput,
    effect: 'write',
    changesNoFiles: refsOnlyChangeNoFiles(options),
    idempotent: true,
    paths: { repo: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) =>
      out.action === 'create' && out.tag !== undefined
        ? `${out.created === true ? 'created' : 'already exists:'} tag ${out.tag.name} -> ${out.tag.sha.slice(0, 12)}`
        : (out.tags ?? []).map((tag) => `${tag.name} ${tag.sha.slice(0, 12)} ${tag.subject}`).join('\n') ||
          '(no tags)',
    // Staging, commits, refs and fetches change no working-tree file: the preview is empty.
    plan: async (input, ctx) =>
      leavesWorkTree<z.output<typeof tagOutput>>(async () => {
        const repo = ctx.prepared;
        const readTags = async (pattern: string) => {
          const result = await repo.git([
            'for-each-ref',
            '--sort=-refname',
            '--format=%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(objectname)%00%(contents:subject)',
            pattern,
          ]);
          return result.stdout
            .split('\n')
            .filter(Boolean)
            .map((line) => {
              const [name = '', type = '', peeled = '', sha = '', subject = ''] = line.split('\0');
              return { name, sha: type === 'tag' ? peeled : sha, annotated: type === 'tag', subject };
            });
        };
        if (input.action === 'list') {
          const page = ctx.list(await readTags('refs/tags/'), { limit: input.limit, cursor: input.cursor });
          if (!page.ok) return page;
          return ok({
            repo: repo.display,
            action: 'list' as const,
            tags: page.value.items,
            ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
          });
        }
        if (input.name === undefined)
          return fail('INVALID_ARGUMENT', 'create needs a tag `name`', { hint: 'Pass name, e.g. "v1.0.0".' });
        const valid = await checkNewRefName(repo, input.name, 'tag');
        if (!valid.ok) return valid;
        const target = await resolveCommit(repo, input.target, 'target');
        if (!target.ok) return target;
        const existing = (await readTags(`refs/tags/${input.name}`)).find((tag) => tag.name === input.name);
        if (existing !== undefined) {
          if (existing.sha === target.value)
            return ok({ repo: repo.display, action: 'create' as const, created: false, tag: existing });
          return fail(
            'ALREADY_EXISTS',
            `tag '${input.name}' already exists at ${existing.sha.slice(0, 12)}`,
            {
              hint: 'Tags are meant to stay put; pick a new name.',
            },
          );
        }
        const args =
          input.message === undefined
            ? ['tag', '--end-of-options', input.name, target.value]
            : [
                'tag',
                '--annotate',
                '--file=-',
                '--cleanup=whitespace',
                '--end-of-options',
                input.name,
                target.value,
              ];
        const result = await repo.git(
          args,
          input.message === undefined ? {} : { stdin: `${input.message}\n` },
        );
        if (result.exitCode !== 0) return gitFailure(`creating tag '${input.name}'`, result);
        const tag = (await readTags(`refs/tags/${input.name}`)).find(
          (candidate) => candidate.name === input.name,
        );
        if (tag === undefined)
          return fail('INTERNAL', `tag '${input.name}' was created but cannot be read back`);
        return ok({ repo: repo.display, action: 'create' as const, created: true, tag });
      }),
  });
}
