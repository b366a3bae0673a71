import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '@keel/kit/core';

/** One dirty or untracked file as the task found it: its bytes, or `null` when it was deleted. */
export interface StartingFile {
  path: string;
  /** base64; null: the file did not exist (a deleted tracked file). */
  content: string | null;
  sha256: string | null;
}

export interface StartingFiles {
  files: StartingFile[];
  /** Paths left out because a cap was reached (their content is not recorded). */
  skipped: string[];
}

const maxFileBytes = 256 * 1024;
const maxTotalBytes = 2 * 1024 * 1024;
const maxFiles = 500;

/**
 * The contents of the files git reported dirty or untracked when the task started, so a replay can
 * rebuild the working tree on top of the recorded HEAD. Bounded: larger files and anything past
 * the caps are listed in `skipped` instead. Untracked directories (`dir/`) are walked.
 */
export function captureStartingFiles(workspace: string, git: unknown): StartingFiles {
  const state = (git ?? {}) as { dirty?: unknown; untracked?: unknown };
  const wanted = [
    ...(Array.isArray(state.dirty) ? state.dirty : []),
    ...(Array.isArray(state.untracked) ? state.untracked : []),
  ].filter((p): p is string => typeof p === 'string');
  const result: StartingFiles = { files: [], skipped: [] };
  let total = 0;
  const visit = (relative: string) => {
    const absolute = path.join(workspace, relative);
    let stat;
    try {
      stat = lstatSync(absolute);
    } catch {
      result.files.push({ path: relative, content: null, sha256: null });
      return;
    }
    if (stat.isDirectory()) {
      for (const entry of readdirSync(absolute).sort()) visit(path.posix.join(relative, entry));
      return;
    }
    if (
      !stat.isFile() ||
      stat.size > maxFileBytes ||
      total + stat.size > maxTotalBytes ||
      result.files.length >= maxFiles
    ) {
      result.skipped.push(relative);
      return;
    }
    const bytes = readFileSync(absolute);
    total += bytes.length;
    result.files.push({ path: relative, content: bytes.toString('base64'), sha256: sha256Hex(bytes) });
  };
  for (const relative of new Set(wanted)) visit(relative.replace(/\/+$/, ''));
  return result;
}
