import type { ToolContext } from '@keel/kit';
import type { Manifest } from '../build/manifest.js';
import { quotedName } from '../text/names.js';

export interface PreparedRelease {
  /** Files copied from the build. */
  copied: number;
  /** Files hard-linked from the previous release because they did not change. */
  linked: number;
  bytesWritten: number;
}

/** The build changed between planning (or the start of the apply) and the copy. */
export class BuildChangedError extends Error {
  constructor(readonly file: string) {
    super(`${quotedName(file)} changed while it was being deployed`);
  }
}

export interface PrepareOptions {
  releaseId: string;
  build: string;
  manifest: Manifest;
  base: string | null;
  signal: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Where releases go. The deployer drives it through the same phases for every kind: prepare a
 * release, make it live (`activate`), read what is live (`current`). What is live is always asked of
 * the target, never assumed from the state, so a crash is reconciled against the truth.
 */
export interface DeployTarget {
  readonly type: 'directory' | 'command';
  /**
   * Whether `current` asks the target itself. When it does not (a command target without a
   * `current` command), an interrupted deploy cannot be reconciled: it is UNKNOWN_STATE for a human.
   */
  readonly observesCurrent: boolean;
  /** A one-line description for listings. */
  readonly description: string;
  /** The live release id, or null when nothing is live. */
  current(ctx: ToolContext): Promise<string | null>;
  /** What a release holds, or null when unknown. */
  manifest(releaseId: string): Promise<Manifest | null>;
  /** Releases the target holds (or, for a command target, the ones this server deployed). */
  releases(): Promise<string[]>;
  prepare(options: PrepareOptions): Promise<PreparedRelease>;
  /** Makes a release live: a new one (`fresh`) or an earlier one again. */
  activate(
    releaseId: string,
    options: { fresh: boolean; build: string; previous: string | null; ctx: ToolContext },
  ): Promise<void>;
  /** Makes nothing live; false when the target cannot (there is no command for it). */
  deactivate(ctx: ToolContext): Promise<boolean>;
  /** Forgets a release (and deletes it where the target holds it). */
  remove(releaseId: string): Promise<void>;
  /** Removes what an interrupted run left behind. */
  sweep(): Promise<void>;
}
