import { unlink } from 'node:fs/promises';
import { defineTool, fail, ok, toolError, type AnyTool, type Outcome, type ResolvedPath } from '@keel/kit';
import type { StructuredPatch } from 'diff';
import { diff } from '../util/lazy.js';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { atomicWrite, ensureParents, looksBinary, parentExists, readWhole, sha256Of } from '../fs/files.js';

interface Planned {
  action: 'modify' | 'create' | 'delete' | 'rename';
  target: ResolvedPath;
  shown: string;
  /** For a rename, the old file, removed after the new one is written. */
  source?: { resolved: ResolvedPath; shown: string };
  before: Buffer | undefined;
  after: Buffer | undefined;
  hunks: number;
}

function stripPrefix(name: string | undefined): string | undefined {
  if (name === undefined || name === '/dev/null') return undefined;
  const plain = name.split('\t')[0]!.trim();
  return /^[ab]\//.test(plain) ? plain.slice(2) : plain;
}

/**
 * `apply_patch`: a unified diff across several files, all or nothing. Every file is read and every
 * hunk fitted in memory first; only when all fit is anything written, and a failure while writing
 * puts back what was already written.
 */
export function applyPatchTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'apply_patch',
    title: 'Apply a unified diff',
    description:
      'Applies a unified diff (as made by `diff -u` or `git diff`, several files allowed; a/ and b/ prefixes are stripped; /dev/null creates or deletes a file) all-or-nothing: every hunk of every file is checked before anything is written, and if one does not fit nothing changes and the error names the file and hunk. Context must match exactly unless fuzzFactor allows mismatched lines. dryRun checks without writing.',
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
          action: z.enum(['modify', 'create', 'delete', 'rename']),
          from: z.string().optional().describe('For a rename, the old path.'),
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
    handler: async (input, ctx) => {
      const { applyPatch, parsePatch } = await diff();
      let patches: StructuredPatch[];
      try {
        patches = parsePatch(input.patch);
      } catch (error) {
        return fail('INVALID_ARGUMENT', `patch cannot be parsed: ${(error as Error).message}`, {
          hint: 'Pass a unified diff with ---/+++ file headers and @@ hunk headers.',
        });
      }
      patches = patches.filter(
        (p) => p.hunks.length > 0 || p.isDelete === true || p.isCreate === true || p.isRename === true,
      );
      if (patches.length === 0) {
        return fail('INVALID_ARGUMENT', 'patch contains no file changes', {
          hint: 'Pass a unified diff with ---/+++ file headers and @@ hunk headers.',
        });
      }
      const resolveName = async (
        name: string,
        access: 'read' | 'write',
      ): Promise<Outcome<{ resolved: ResolvedPath; shown: string }>> => {
        const resolved = await ctx.jail.resolve(name);
        if (!resolved.ok) return resolved;
        return checkResolved(ctx, deps, resolved.value, access);
      };

      const plan: Planned[] = [];
      const targets = new Set<string>();
      for (const patch of patches) {
        if (patch.isBinary === true) {
          return fail(
            'INVALID_ARGUMENT',
            `patch for '${patch.newFileName ?? patch.oldFileName}' is a binary diff`,
            { hint: 'Write binary files with write_file (base64).' },
          );
        }
        const oldName = stripPrefix(patch.oldFileName);
        const newName = stripPrefix(patch.newFileName);
        const name = newName ?? oldName;
        if (name === undefined)
          return fail('INVALID_ARGUMENT', 'a file patch names neither an old nor a new file', {
            hint: 'Each file needs ---/+++ headers.',
          });
        const target = await resolveName(name, 'write');
        if (!target.ok) return target;
        const key = target.value.resolved.real;
        if (targets.has(key))
          return fail('INVALID_ARGUMENT', `patch changes '${target.value.shown}' twice`, {
            hint: 'Merge the hunks for one file into one file section.',
          });
        targets.add(key);
        let source: { resolved: ResolvedPath; shown: string } | undefined;
        if (oldName !== undefined && newName !== undefined && oldName !== newName) {
          const from = await resolveName(oldName, 'write');
          if (!from.ok) return from;
          source = from.value;
        }
        const action: Planned['action'] =
          oldName === undefined
            ? 'create'
            : newName === undefined
              ? 'delete'
              : source !== undefined
                ? 'rename'
                : 'modify';
        const readFrom = source ?? target.value;
        let before: Buffer | undefined;
        if (action !== 'create') {
          const current = await readWhole(ctx.jail, readFrom.resolved, readFrom.shown);
          if (!current.ok) return current;
          before = current.value;
          if (looksBinary(before))
            return fail('INVALID_ARGUMENT', `'${readFrom.shown}' is a binary file`, {
              hint: 'Write binary files with write_file (base64).',
            });
        } else if (target.value.resolved.exists) {
          return fail('ALREADY_EXISTS', `patch creates '${target.value.shown}', which already exists`, {
            hint: 'Make the patch modify the file (---/+++ both naming it), or delete it first.',
          });
        }
        if (action === 'rename' && target.value.resolved.exists) {
          return fail('ALREADY_EXISTS', `patch renames to '${target.value.shown}', which already exists`, {
            hint: 'Delete or move the destination first.',
          });
        }
        const text = before?.toString('utf8') ?? '';
        const applied = applyPatch(text, patch, { fuzzFactor: input.fuzzFactor });
        if (applied === false) {
          let failing = patch.hunks.length;
          for (let k = 1; k <= patch.hunks.length; k++) {
            if (
              applyPatch(
                text,
                { ...patch, hunks: patch.hunks.slice(0, k) },
                { fuzzFactor: input.fuzzFactor },
              ) === false
            ) {
              failing = k;
              break;
            }
          }
          const hunk = patch.hunks[failing - 1];
          return fail(
            'CONFLICT',
            `hunk ${failing} of ${patch.hunks.length} for '${readFrom.shown}'${hunk === undefined ? '' : ` (@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@)`} does not apply; nothing was written`,
            {
              hint: 'The file differs from the patch context: read the file around those lines and regenerate the hunk (or allow fuzzFactor).',
              details: { path: readFrom.shown, hunk: failing },
            },
          );
        }
        plan.push({
          action,
          target: target.value.resolved,
          shown: target.value.shown,
          ...(source === undefined ? {} : { source }),
          before,
          after: action === 'delete' ? undefined : Buffer.from(applied, 'utf8'),
          hunks: patch.hunks.length,
        });
      }

      if (!input.dryRun) {
        const done: Planned[] = [];
        const failure = await (async (): Promise<Outcome<void> | undefined> => {
          for (const step of plan) {
            if (step.action === 'delete') {
              await unlink(step.target.real);
            } else {
              if (!(await parentExists(step.target.real))) {
                const made = await ensureParents(ctx.jail, step.target, step.shown);
                if (!made.ok) return made;
              }
              const written = await atomicWrite(ctx.jail, step.target, step.after!, step.shown, {
                mode: step.action === 'modify' ? 'overwrite' : 'create',
              });
              if (!written.ok) return written;
              if (step.source !== undefined) await unlink(step.source.resolved.real);
            }
            done.push(step);
          }
          return undefined;
        })().catch((error: unknown) =>
          fail('INTERNAL', `writing the patch failed: ${(error as Error).message}`),
        );
        if (failure !== undefined && !failure.ok) {
          for (const step of done.reverse()) {
            if (step.action === 'create' || step.action === 'rename')
              await unlink(step.target.real).catch(() => undefined);
            const original = step.source ?? { resolved: step.target, shown: step.shown };
            if (step.before !== undefined)
              await atomicWrite(ctx.jail, original.resolved, step.before, original.shown, {
                mode: 'overwrite',
              });
          }
          return fail(
            failure.error.code,
            `${failure.error.message}; the files already written were restored`,
            failure.error.hint === undefined ? {} : { hint: failure.error.hint },
          );
        }
      }
      return ok({
        files: plan.map((step) => ({
          path: step.shown,
          action: step.action,
          ...(step.source === undefined ? {} : { from: step.source.shown }),
          hunks: step.hunks,
          ...(step.after === undefined ? {} : { sha256: sha256Of(step.after) }),
        })),
        dryRun: input.dryRun,
      });
    },
    // After a crash each file shows whether its part landed: the reverse patch fits the content now.
    reconcile: async (input, ctx) => {
      if (input.dryRun) return { status: 'not_done' };
      const { applyPatch, parsePatch, reversePatch } = await diff();
      let patches: StructuredPatch[];
      try {
        patches = parsePatch(input.patch);
      } catch {
        return { status: 'not_done' };
      }
      const read = async (name: string | undefined) => {
        if (name === undefined) return undefined;
        const resolved = await ctx.jail.resolve(name);
        if (!resolved.ok || !resolved.value.exists) return undefined;
        const content = await readWhole(ctx.jail, resolved.value, name);
        return content.ok ? content.value.toString('utf8') : undefined;
      };
      const shownOf = async (name: string) => {
        const resolved = await ctx.jail.resolve(name);
        return resolved.ok ? ctx.jail.display(resolved.value.real) : name;
      };
      const states: Array<{ path: string; state: PatchFileState; file: PatchFileResult }> = [];
      for (const patch of patches) {
        if (
          patch.hunks.length === 0 &&
          patch.isDelete !== true &&
          patch.isCreate !== true &&
          patch.isRename !== true
        )
          continue;
        const oldName = stripPrefix(patch.oldFileName);
        const newName = stripPrefix(patch.newFileName);
        const name = newName ?? oldName ?? '';
        const [before, after] = await Promise.all([read(oldName), read(newName)]);
        const fits = (text: string | undefined, p: StructuredPatch) =>
          text !== undefined && applyPatch(text, p, { fuzzFactor: input.fuzzFactor }) !== false;
        const undone =
          after === undefined
            ? false
            : applyPatch(after, reversePatch(patch), { fuzzFactor: input.fuzzFactor });
        const landed =
          undone !== false && applyPatch(undone, patch, { fuzzFactor: input.fuzzFactor }) === after;
        const action: PatchFileResult['action'] =
          oldName === undefined
            ? 'create'
            : newName === undefined
              ? 'delete'
              : oldName !== newName
                ? 'rename'
                : 'modify';
        const state: PatchFileState =
          action === 'create'
            ? after === undefined
              ? 'pending'
              : landed
                ? 'applied'
                : 'unknown'
            : action === 'delete'
              ? before === undefined
                ? 'applied'
                : fits(before, patch)
                  ? 'pending'
                  : 'unknown'
              : action === 'rename'
                ? before === undefined && landed
                  ? 'applied'
                  : after === undefined && fits(before, patch)
                    ? 'pending'
                    : 'unknown'
                : landed && !fits(after, patch)
                  ? 'applied'
                  : fits(before, patch)
                    ? 'pending'
                    : 'unknown';
        states.push({
          path: name,
          state,
          file: {
            path: await shownOf(name),
            action,
            ...(action === 'rename' && oldName !== undefined ? { from: await shownOf(oldName) } : {}),
            hunks: patch.hunks.length,
            ...(after === undefined || action === 'delete'
              ? {}
              : { sha256: sha256Of(Buffer.from(after, 'utf8')) }),
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
  action: 'modify' | 'create' | 'delete' | 'rename';
  from?: string;
  hunks: number;
  sha256?: string;
}
