import { chmod, stat, unlink } from 'node:fs/promises';
import { fail, ok, type Outcome, type ResolvedPath, type ToolContext } from '@keel/kit';
import type { StructuredPatch } from 'diff';
import { diff } from '../util/lazy.js';
import { checkResolved, type FsDeps } from './access.js';
import { atomicWrite, ensureParents, isUtf8Text, looksBinary, parentExists, readWhole } from './files.js';

/** What a file section of a patch does. */
export type PatchAction = 'modify' | 'create' | 'delete' | 'rename' | 'copy' | 'mode';

/**
 * One file section of a unified or git diff as jsdiff parses it (which knows git's renames, copies,
 * modes and quoted names), classified: which file it reads, which it writes, what it does.
 */
export interface FilePatch {
  patch: StructuredPatch;
  action: PatchAction;
  /** The file read: the one modified or deleted, the source of a rename or copy; undefined for a create. */
  oldName: string | undefined;
  /** The file written; undefined for a delete. */
  newName: string | undefined;
  /** Whether the file ends executable, when the patch sets its mode (`new mode 100755`). */
  executable: boolean | undefined;
}

function stripPrefix(name: string | undefined): string | undefined {
  if (name === undefined || name === '/dev/null') return undefined;
  const plain = name.trim();
  return /^[ab]\//.test(plain) ? plain.slice(2) : plain;
}

const binaryHint = 'Write binary files with write_file (base64).';

/**
 * Parses a patch into its file sections. Refused: what does not parse, binary content (`Binary
 * files … differ`, `GIT binary patch`: jsdiff keeps no data for them, so applying would lose
 * bytes), symlink and submodule modes, and a patch that changes nothing.
 */
export async function describePatch(text: string): Promise<Outcome<FilePatch[]>> {
  const { parsePatch } = await diff();
  let patches: StructuredPatch[];
  try {
    patches = parsePatch(text);
  } catch (error) {
    return fail('INVALID_ARGUMENT', `patch cannot be parsed: ${(error as Error).message}`, {
      hint: 'Pass a unified diff with ---/+++ file headers and @@ hunk headers.',
    });
  }
  const gitBinary = gitBinaryTarget(text);
  if (gitBinary !== undefined)
    return fail('INVALID_ARGUMENT', `patch for '${gitBinary}' is a binary diff`, { hint: binaryHint });
  const files: FilePatch[] = [];
  for (const patch of patches) {
    let oldName = stripPrefix(patch.oldFileName);
    let newName = stripPrefix(patch.newFileName);
    if (patch.isBinary === true)
      return fail('INVALID_ARGUMENT', `patch for '${newName ?? oldName}' is a binary diff`, {
        hint: binaryHint,
      });
    for (const mode of [patch.oldMode, patch.newMode]) {
      if (mode !== undefined && mode !== '100644' && mode !== '100755')
        return fail(
          'INVALID_ARGUMENT',
          `patch for '${newName ?? oldName}' has mode ${mode}, a ${mode === '120000' ? 'symlink' : 'submodule or special file'}`,
          { hint: 'apply_patch writes regular files only; make links and submodules with git.' },
        );
    }
    const modeChanged =
      patch.newMode !== undefined && patch.oldMode !== undefined && patch.newMode !== patch.oldMode;
    // A section that changes nothing (an index line alone, text between sections) is not a change.
    const flagged =
      patch.isRename === true || patch.isCopy === true || patch.isCreate === true || patch.isDelete === true;
    if (patch.hunks.length === 0 && !flagged && !modeChanged) continue;
    let action: PatchAction;
    if (patch.isCopy === true) action = 'copy';
    else if (patch.isCreate === true || oldName === undefined) action = 'create';
    else if (patch.isDelete === true || newName === undefined) action = 'delete';
    else if (patch.isRename === true || oldName !== newName) action = 'rename';
    else if (patch.hunks.length === 0 && modeChanged) action = 'mode';
    else action = 'modify';
    if (action === 'create') [oldName, newName] = [undefined, newName ?? oldName];
    if (action === 'delete') [oldName, newName] = [oldName ?? newName, undefined];
    if ((oldName ?? newName) === undefined)
      return fail('INVALID_ARGUMENT', 'a file patch names neither an old nor a new file', {
        hint: 'Each file needs ---/+++ headers.',
      });
    const executable =
      action === 'create' && patch.newMode !== undefined
        ? patch.newMode === '100755'
        : modeChanged
          ? patch.newMode === '100755'
          : undefined;
    files.push({ patch, action, oldName, newName, executable });
  }
  if (files.length === 0)
    return fail('INVALID_ARGUMENT', 'patch contains no file changes', {
      hint: 'Pass a unified diff with ---/+++ file headers and @@ hunk headers.',
    });
  return ok(files);
}

/** The file of the first `GIT binary patch` section, which jsdiff reads past without a trace. */
function gitBinaryTarget(text: string): string | undefined {
  let header = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --git ')) header = line;
    else if (line === 'GIT binary patch' || line === 'GIT binary patch\r') {
      const at = header.lastIndexOf(' b/');
      return at === -1 ? header.slice('diff --git '.length) || '(unnamed)' : header.slice(at + 3);
    }
  }
  return undefined;
}

export interface Located {
  resolved: ResolvedPath;
  shown: string;
}

/** One file's part of a checked patch: everything computed, nothing written. */
export interface PatchStep {
  action: PatchAction;
  target: Located;
  /** A rename's or copy's source. */
  source: Located | undefined;
  /** The bytes read (the source of a rename or copy); undefined for a create. */
  before: Buffer | undefined;
  /** The bytes to write; undefined for a delete and a mode change. */
  after: Buffer | undefined;
  /** The permission bits of the file read, and those the file ends with. */
  modeBefore: number | undefined;
  modeAfter: number | undefined;
  hunks: number;
  linesAdded: number;
  linesRemoved: number;
  binary: boolean;
}

/**
 * Checks a whole patch against the files in the jail, in memory: every name resolved (symlinks
 * followed to their real targets) and held to the server's policy, every hunk fitted. The steps are
 * the patch's effect; `applySteps` carries them out.
 */
export async function planPatch(
  files: readonly FilePatch[],
  ctx: ToolContext,
  deps: FsDeps,
  fuzzFactor: number,
): Promise<Outcome<PatchStep[]>> {
  const { applyPatch } = await diff();
  const locate = async (name: string, access: 'read' | 'write'): Promise<Outcome<Located>> => {
    const resolved = await ctx.jail.resolve(name);
    if (!resolved.ok) return resolved;
    return checkResolved(ctx, deps, resolved.value, access);
  };
  const steps: PatchStep[] = [];
  const touched = new Set<string>();
  const once = (located: Located): Outcome<void> => {
    if (touched.has(located.resolved.real))
      return fail('INVALID_ARGUMENT', `patch changes '${located.shown}' twice`, {
        hint: 'Merge the hunks for one file into one file section.',
      });
    touched.add(located.resolved.real);
    return ok(undefined);
  };
  for (const file of files) {
    const { patch, action } = file;
    const target = await locate((file.newName ?? file.oldName)!, 'write');
    if (!target.ok) return target;
    const first = once(target.value);
    if (!first.ok) return first;
    let source: Located | undefined;
    if (action === 'rename' || action === 'copy') {
      const from = await locate(file.oldName!, action === 'rename' ? 'write' : 'read');
      if (!from.ok) return from;
      if (action === 'rename') {
        const moved = once(from.value);
        if (!moved.ok) return moved;
      }
      source = from.value;
    }
    const readFrom = source ?? target.value;
    let before: Buffer | undefined;
    let modeBefore: number | undefined;
    if (action !== 'create') {
      const current = await readWhole(ctx.jail, readFrom.resolved, readFrom.shown);
      if (!current.ok) return current;
      before = current.value;
      modeBefore = (await stat(readFrom.resolved.real)).mode & 0o7777;
      // Hunks are text; a rename, copy or mode change without hunks moves the bytes as they are.
      if (patch.hunks.length > 0 && !isUtf8Text(before))
        return fail(
          'INVALID_ARGUMENT',
          `'${readFrom.shown}' ${looksBinary(before) ? 'is a binary file' : 'is not UTF-8 text'}`,
          { hint: binaryHint },
        );
    } else if (target.value.resolved.exists) {
      return fail('ALREADY_EXISTS', `patch creates '${target.value.shown}', which already exists`, {
        hint: 'Make the patch modify the file (---/+++ both naming it), or delete it first.',
      });
    }
    if ((action === 'rename' || action === 'copy') && target.value.resolved.exists) {
      return fail(
        'ALREADY_EXISTS',
        `patch ${action === 'rename' ? 'renames' : 'copies'} to '${target.value.shown}', which already exists`,
        {
          hint: 'Delete or move the destination first.',
        },
      );
    }
    let after: Buffer | undefined;
    if (patch.hunks.length === 0) {
      if (action === 'delete' && before!.length > 0) {
        return fail('CONFLICT', `patch deletes '${readFrom.shown}' without showing its content`, {
          hint: 'A deletion must carry hunks that remove every line (git diff makes them); or use the delete tool.',
          details: { path: readFrom.shown },
        });
      }
      after = action === 'delete' || action === 'mode' ? undefined : (before ?? Buffer.alloc(0));
    } else {
      const text = before?.toString('utf8') ?? '';
      const applied = applyPatch(text, patch, { fuzzFactor });
      if (applied === false) return hunkConflict(applyPatch, text, patch, fuzzFactor, readFrom.shown);
      if (action === 'delete' && applied !== '') {
        return fail(
          'CONFLICT',
          `patch deletes '${readFrom.shown}' but its hunks leave ${Buffer.byteLength(applied)} bytes of it`,
          {
            hint: 'Read the file and regenerate the deletion from its whole content.',
            details: { path: readFrom.shown },
          },
        );
      }
      after = action === 'delete' ? undefined : Buffer.from(applied, 'utf8');
    }
    let linesAdded = 0;
    let linesRemoved = 0;
    for (const hunk of patch.hunks) {
      for (const line of hunk.lines) {
        if (line.startsWith('+')) linesAdded++;
        else if (line.startsWith('-')) linesRemoved++;
      }
    }
    const modeAfter = action === 'delete' ? undefined : withExecutable(modeBefore ?? 0o644, file.executable);
    steps.push({
      action,
      target: target.value,
      source,
      before,
      after,
      modeBefore,
      modeAfter,
      hunks: patch.hunks.length,
      linesAdded,
      linesRemoved,
      binary: before !== undefined && looksBinary(before),
    });
  }
  return ok(steps);
}

/** A mode with the executable bits set where it is readable (as git checks out 100755), or cleared. */
function withExecutable(mode: number, executable: boolean | undefined): number {
  if (executable === undefined) return mode;
  return executable ? mode | ((mode & 0o444) >> 2) : mode & ~0o111;
}

function hunkConflict(
  applyPatch: typeof import('diff').applyPatch,
  text: string,
  patch: StructuredPatch,
  fuzzFactor: number,
  shown: string,
): Outcome<never> {
  let failing = patch.hunks.length;
  for (let k = 1; k <= patch.hunks.length; k++) {
    if (applyPatch(text, { ...patch, hunks: patch.hunks.slice(0, k) }, { fuzzFactor }) === false) {
      failing = k;
      break;
    }
  }
  const hunk = patch.hunks[failing - 1];
  return fail(
    'CONFLICT',
    `hunk ${failing} of ${patch.hunks.length} for '${shown}'${hunk === undefined ? '' : ` (@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@)`} does not apply; nothing was written`,
    {
      hint: 'The file differs from the patch context: read the file around those lines and regenerate the hunk (or allow fuzzFactor).',
      details: { path: shown, hunk: failing },
    },
  );
}

/**
 * Writes the steps in order; if one fails, puts back what the earlier ones changed, so the patch
 * lands whole or not at all.
 */
export async function applySteps(steps: readonly PatchStep[], ctx: ToolContext): Promise<Outcome<void>> {
  const done: PatchStep[] = [];
  const failure = await (async (): Promise<Outcome<void> | undefined> => {
    for (const step of steps) {
      const target = step.target;
      if (step.action === 'delete') {
        await unlink(target.resolved.real);
      } else if (step.action === 'mode') {
        await chmod(target.resolved.real, step.modeAfter!);
      } else {
        if (!(await parentExists(target.resolved.real))) {
          const made = await ensureParents(ctx.jail, target.resolved, target.shown);
          if (!made.ok) return made;
        }
        const written = await atomicWrite(ctx.jail, target.resolved, step.after!, target.shown, {
          mode: step.action === 'modify' ? 'overwrite' : 'create',
          ...(step.modeAfter === undefined ? {} : { fileMode: step.modeAfter }),
        });
        if (!written.ok) return written;
        // An overwrite keeps the file's own mode: a mode the patch sets is applied after.
        if (step.action === 'modify' && step.modeAfter !== step.modeBefore)
          await chmod(target.resolved.real, step.modeAfter!);
        if (step.action === 'rename') await unlink(step.source!.resolved.real);
      }
      done.push(step);
    }
    return undefined;
  })().catch((error: unknown) => fail('INTERNAL', `writing the patch failed: ${(error as Error).message}`));
  if (failure === undefined || failure.ok) return ok(undefined);
  for (const step of done.reverse()) {
    const target = step.target;
    if (step.action === 'create' || step.action === 'rename' || step.action === 'copy')
      await unlink(target.resolved.real).catch(() => undefined);
    if (step.action === 'mode' || step.action === 'copy') {
      if (step.action === 'mode') await chmod(target.resolved.real, step.modeBefore!).catch(() => undefined);
      continue;
    }
    const original = step.source ?? target;
    if (step.before !== undefined)
      await atomicWrite(ctx.jail, original.resolved, step.before, original.shown, {
        mode: 'overwrite',
        ...(step.modeBefore === undefined ? {} : { fileMode: step.modeBefore }),
      });
    if (step.action === 'modify' && step.modeBefore !== undefined && step.modeAfter !== step.modeBefore)
      await chmod(target.resolved.real, step.modeBefore).catch(() => undefined);
  }
  return fail(
    failure.error.code,
    `${failure.error.message}; the files already written were restored`,
    failure.error.hint === undefined ? {} : { hint: failure.error.hint },
  );
}
