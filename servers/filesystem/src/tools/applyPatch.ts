import { stat } from 'node:fs/promises';
import { defineTool, ok, toolError, type AnyTool } from '@keel/kit';
import { diff } from '../util/lazy.js';
import * as z from 'zod';
import type { FsDeps } from '../fs/access.js';
import { readWhole, sha256Of } from '../fs/files.js';
import { applySteps, describePatch, planPatch, type PatchAction } from '../fs/patchPlan.js';

/**
 * `apply_patch`: a unified diff across several files, all or nothing. Every file is read and every
 * hunk fitted in memory first (`planPatch`); only when all fit is anything written (`applySteps`),
 * and a failure while writing puts back what was already written. The same plan is the preview.
 */
export function applyPatchTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'apply_patch',
    title: 'Apply a unified diff',
    description:
      'Applies a unified diff (`diff -u` or `git diff`; several files, /dev/null to create or delete, git renames, copies and modes) all-or-nothing: if one hunk does not fit, nothing changes and the error names the file and hunk. Context must match exactly unless fuzzFactor allows. Binary diffs are refused.',
    input: z.object({
      patch: z.string().min(1).max(4_194_304).describe('The unified diff text.'),
      dryRun: z.boolean().default(false).describe('Check that every hunk applies, write nothing.'),
      fuzzFactor: z
        .number()
        .int()
        .min(0)
        .max(3)
        .default(0)
        .describe('Context lines per hunk allowed to differ (default 0: exact).'),
    }),
    output: z.object({
      files: z.array(
        z.object({
          path: z.string(),
          action: z.enum(['modify', 'create', 'delete', 'rename', 'copy', 'mode']),
          from: z.string().optional().describe('For a rename or copy, the source path.'),
          hunks: z.number(),
          sha256: z.string().optional().describe('SHA-256 of the new content (absent for a delete).'),
        }),
      ),
      dryRun: z.boolean(),
    }),
    effect: 'write',
    render: (out) =>
      [
        `${out.dryRun ? 'would apply' : 'applied'} to ${out.files.length} file(s):`,
        ...out.files.map(
          (f) => `  ${f.action} ${f.from === undefined ? '' : `${f.from} -> `}${f.path} (${f.hunks} hunks)`,
        ),
      ].join('\n'),
    plan: async (input, ctx) => {
      const described = await describePatch(input.patch);
      if (!described.ok) return described;
      const planned = await planPatch(described.value, ctx, deps, input.fuzzFactor);
      if (!planned.ok) return planned;
      const steps = planned.value;
      return ok({
        effect: () => ({
          files: input.dryRun
            ? []
            : steps.map((step) => ({
                path: step.target.resolved.real,
                change: step.action,
                ...(step.source === undefined ? {} : { from: step.source.resolved.real }),
                linesAdded: step.linesAdded,
                linesRemoved: step.linesRemoved,
                binary: step.binary,
              })),
        }),
        apply: async () => {
          if (!input.dryRun) {
            const applied = await applySteps(steps, ctx);
            if (!applied.ok) return applied;
          }
          return ok({
            files: steps.map((step) => ({
              path: step.target.shown,
              action: step.action,
              ...(step.source === undefined ? {} : { from: step.source.shown }),
              hunks: step.hunks,
              ...(step.action === 'delete' ? {} : { sha256: sha256Of(step.after ?? step.before!) }),
            })),
            dryRun: input.dryRun,
          });
        },
      });
    },
    // After a crash each file shows whether its part landed: the reverse patch fits the content now.
    reconcile: async (input, ctx) => {
      if (input.dryRun) return { status: 'not_done' };
      const described = await describePatch(input.patch);
      if (!described.ok) return { status: 'not_done' };
      const { applyPatch, reversePatch } = await diff();
      const fuzz = { fuzzFactor: input.fuzzFactor };
      const read = async (name: string | undefined) => {
        if (name === undefined) return undefined;
        const resolved = await ctx.jail.resolve(name);
        if (!resolved.ok || !resolved.value.exists) return undefined;
        const content = await readWhole(ctx.jail, resolved.value, name);
        if (!content.ok) return undefined;
        const mode = (await stat(resolved.value.real)).mode;
        return {
          text: content.value.toString('utf8'),
          bytes: content.value,
          executable: (mode & 0o100) !== 0,
        };
      };
      const shownOf = async (name: string) => {
        const resolved = await ctx.jail.resolve(name);
        return resolved.ok ? ctx.jail.display(resolved.value.real) : name;
      };
      const states: Array<{ path: string; state: PatchFileState; file: PatchFileResult }> = [];
      for (const { patch, action, oldName, newName, executable } of described.value) {
        const name = (newName ?? oldName)!;
        const [before, after] = await Promise.all([read(oldName), read(newName)]);
        const fits = (text: string | undefined) =>
          text !== undefined && applyPatch(text, patch, fuzz) !== false;
        const undone = after === undefined ? false : applyPatch(after.text, reversePatch(patch), fuzz);
        const landed =
          undone !== false &&
          applyPatch(undone, patch, fuzz) === after!.text &&
          (executable === undefined || after!.executable === executable);
        const state: PatchFileState = (() => {
          switch (action) {
            case 'create':
              return after === undefined ? 'pending' : landed ? 'applied' : 'unknown';
            case 'delete':
              return before === undefined ? 'applied' : fits(before.text) ? 'pending' : 'unknown';
            case 'rename':
              return before === undefined && landed
                ? 'applied'
                : after === undefined && fits(before?.text)
                  ? 'pending'
                  : 'unknown';
            case 'copy':
              return after === undefined
                ? fits(before?.text)
                  ? 'pending'
                  : 'unknown'
                : landed
                  ? 'applied'
                  : 'unknown';
            case 'mode':
              return before === undefined
                ? 'unknown'
                : before.executable === executable
                  ? 'applied'
                  : 'pending';
            case 'modify':
              return landed && !fits(after!.text) ? 'applied' : fits(before?.text) ? 'pending' : 'unknown';
          }
        })();
        const written = action === 'mode' ? before : after;
        states.push({
          path: name,
          state,
          file: {
            path: await shownOf(name),
            action,
            ...((action === 'rename' || action === 'copy') && oldName !== undefined
              ? { from: await shownOf(oldName) }
              : {}),
            hunks: patch.hunks.length,
            ...(written === undefined || action === 'delete' ? {} : { sha256: sha256Of(written.bytes) }),
          },
        });
      }
      if (states.every((s) => s.state === 'pending')) return { status: 'not_done' };
      if (states.every((s) => s.state === 'applied'))
        return { status: 'done', value: { files: states.map((s) => s.file), dryRun: false } };
      return {
        status: 'failed',
        error: toolError(
          'CONFLICT',
          'an interrupted apply_patch left its files in a state it cannot confirm (some changed, some not, or changed otherwise)',
          {
            hint: 'Read the files listed in details, then apply what is still missing with a new idempotency key.',
            details: { files: states.map((s) => ({ path: s.path, state: s.state })) },
          },
        ),
      };
    },
  });
}

type PatchFileState = 'applied' | 'pending' | 'unknown';
interface PatchFileResult {
  path: string;
  action: PatchAction;
  from?: string;
  hunks: number;
  sha256?: string;
}
