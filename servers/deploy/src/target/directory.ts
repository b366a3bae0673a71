import { randomBytes } from 'node:crypto';
import {
  copyFile,
  chmod,
  link,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { KeelError } from '@keel/kit';
import {
  forEachLimited,
  hashFile,
  manifestOf,
  sameContent,
  type Manifest,
  type ManifestEntry,
} from '../build/manifest.js';
import { BuildChangedError, type DeployTarget, type PrepareOptions, type PreparedRelease } from './target.js';

const copyConcurrency = 8;
const stagingPrefix = '.staging-';
const currentTempPrefix = '.current-';

/**
 * A deploy root on the local file system:
 *
 * ```
 * <root>/current -> releases/<id>       the live release (a relative symlink, replaced by rename)
 * <root>/releases/<id>/                 one directory per release; unchanged files are hard links
 * <root>/releases/.staging-<id>/        a release being copied (renamed into place when complete)
 * <root>/.keel/manifests/<id>.json      what each release holds, for the next plan's diff and links
 * ```
 *
 * A release directory exists under its final name only once complete, and `current` only ever
 * names a complete release, so a reader resolving `current` always lands in a whole release.
 */
export class DirectoryTarget implements DeployTarget {
  readonly type = 'directory';
  readonly observesCurrent = true;
  readonly description: string;
  readonly root: string;
  readonly releasesDir: string;
  readonly currentLink: string;
  readonly manifestsDir: string;

  constructor(root: string, description = root) {
    this.root = root;
    this.description = description;
    this.releasesDir = path.join(root, 'releases');
    this.currentLink = path.join(root, 'current');
    this.manifestsDir = path.join(root, '.keel', 'manifests');
  }

  /** The live release id, or null when nothing was deployed. Anything but `releases/<id>` is UNKNOWN_STATE. */
  async current(): Promise<string | null> {
    let target: string;
    try {
      target = await readlink(this.currentLink);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'EINVAL') throw unknownCurrent(this.currentLink, 'is not a symlink');
      throw error;
    }
    const match = /^releases\/([a-z0-9][a-z0-9.-]*)$/.exec(target);
    if (match === null) throw unknownCurrent(this.currentLink, `points to '${target}'`);
    return match[1]!;
  }

  /** Release directories present under their final name. */
  async releases(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.releasesDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names.filter((name) => !name.startsWith('.')).sort();
  }

  async hasRelease(releaseId: string): Promise<boolean> {
    return (await this.releases()).includes(releaseId);
  }

  /** What a release holds, from its manifest file; null when there is none (made by hand, or pruned). */
  async manifest(releaseId: string): Promise<Manifest | null> {
    try {
      const entries = JSON.parse(await readFile(this.#manifestFile(releaseId), 'utf8')) as ManifestEntry[];
      return manifestOf(entries);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /**
   * Builds `releases/<id>` from the build: each entry is copied, or hard-linked from `base` when its
   * content and mode are unchanged there. Every file is checked against `manifest` as it goes (the
   * copy is hashed; a linked file's build source is hashed), so the release holds exactly what was
   * planned or nothing: a difference throws {@link BuildChangedError} and the staging directory is
   * removed. The directory appears under its final name only when complete.
   */
  async prepare(options: PrepareOptions): Promise<PreparedRelease> {
    const { releaseId, build, manifest } = options;
    const staging = path.join(this.releasesDir, `${stagingPrefix}${releaseId}`);
    const finalDir = path.join(this.releasesDir, releaseId);
    await mkdir(this.releasesDir, { recursive: true });
    await mkdir(this.manifestsDir, { recursive: true });
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging);
    const baseManifest = options.base === null ? null : await this.manifest(options.base);
    const baseEntries = new Map<string, ManifestEntry>();
    for (const entry of baseManifest?.entries ?? []) baseEntries.set(entry.path, entry);
    const baseDir = options.base === null ? null : path.join(this.releasesDir, options.base);

    const stats: PreparedRelease = { copied: 0, linked: 0, bytesWritten: 0 };
    try {
      // Directories first (parents sort before children), so files can land in any order.
      for (const entry of manifest.entries) {
        if (entry.kind === 'dir') await mkdir(path.join(staging, entry.path), { recursive: true });
      }
      const leaves = manifest.entries.filter((entry) => entry.kind !== 'dir');
      let done = 0;
      await forEachLimited(leaves, copyConcurrency, async (entry) => {
        options.signal.throwIfAborted();
        const destination = path.join(staging, entry.path);
        if (entry.kind === 'symlink') {
          await symlink(entry.target!, destination);
        } else {
          const source = path.join(build, entry.path);
          const previous = baseEntries.get(entry.path);
          if (baseDir !== null && previous !== undefined && sameContent(previous, entry)) {
            if ((await hashFile(source)) !== entry.sha256) throw new BuildChangedError(entry.path);
            await link(path.join(baseDir, entry.path), destination);
            stats.linked++;
          } else {
            await copyFile(source, destination);
            if ((await hashFile(destination)) !== entry.sha256) throw new BuildChangedError(entry.path);
            await chmod(destination, entry.mode);
            stats.copied++;
            stats.bytesWritten += entry.size;
          }
        }
        done++;
        options.onProgress?.(done, leaves.length);
      });
      for (const entry of manifest.entries) {
        if (entry.kind === 'dir') await chmod(path.join(staging, entry.path), entry.mode);
      }
      await writeAtomic(this.#manifestFile(releaseId), JSON.stringify(manifest.entries));
      await rm(finalDir, { recursive: true, force: true });
      await rename(staging, finalDir);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return stats;
  }

  async activate(releaseId: string): Promise<void> {
    await this.switchTo(releaseId);
  }

  async deactivate(): Promise<boolean> {
    await this.switchTo(null);
    return true;
  }

  /**
   * Points `current` at a release, or removes it (null). The new link is made under a temporary name
   * and renamed over `current`: rename(2) replaces it in one step, so `current` is never missing.
   */
  async switchTo(releaseId: string | null): Promise<void> {
    if (releaseId === null) {
      await unlink(this.currentLink).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      return;
    }
    const temporary = path.join(this.root, `${currentTempPrefix}${randomBytes(6).toString('hex')}`);
    await symlink(`releases/${releaseId}`, temporary);
    try {
      await rename(temporary, this.currentLink);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  /** Removes a release directory and its manifest. */
  async remove(releaseId: string): Promise<void> {
    await rm(path.join(this.releasesDir, releaseId), { recursive: true, force: true });
    await rm(this.#manifestFile(releaseId), { force: true });
  }

  /** Removes what an interrupted run leaves behind: staging directories and temporary links. */
  async sweep(): Promise<void> {
    for (const name of await readdir(this.releasesDir).catch(() => [] as string[])) {
      if (name.startsWith(stagingPrefix))
        await rm(path.join(this.releasesDir, name), { recursive: true, force: true });
    }
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      if (name.startsWith(currentTempPrefix)) await rm(path.join(this.root, name), { force: true });
    }
  }

  #manifestFile(releaseId: string): string {
    return path.join(this.manifestsDir, `${releaseId}.json`);
  }
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, file);
}

function unknownCurrent(link: string, what: string): KeelError {
  return new KeelError('UNKNOWN_STATE', `'${link}' ${what}, not a release of this deploy root`, {
    hint: 'Someone changed the deploy root by hand; point current at releases/<id> (or remove it) and retry.',
  });
}
