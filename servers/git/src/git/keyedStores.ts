import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, fsyncSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fail, ok, type KeyClaim, type Outcome } from '@keel/kit';
import { readSmall } from './args.js';
import { findCommitByKey, keyedCommits } from './commit.js';
import type { Repo } from './repo.js';

/**
 * The file in a repository's git dir (shared by its worktrees) that names every idempotency store
 * that committed with a key there, one `store <identity>` line each, appended before its first such
 * commit. `legacy <ms>`: the newest keyed commit the history held when the file was made (by an
 * older server, or another tool); until the store's TTL has passed since, the history is searched.
 * `unsure <sha256 of a key>`: a commit under that key was interrupted (cancelled, timed out) and may
 * have landed, though the store freed the key; its retry searches.
 */
export const keyedStoresFile = 'keel-idempotency-stores';

/** A store whose records have no identity (`KeyClaim` undefined): it never matches one that does. */
const unnamedStore = 'unnamed';

interface KeyedStores {
  stores: Set<string>;
  legacy: number;
  unsure: Set<string>;
}

const keyHash = (key: string) => createHash('sha256').update(key).digest('hex');

/**
 * The commit an earlier call with `key` made, if there may be one. The history (every ref) is
 * searched for the key's trailer unless the store has never seen the key and is the only store that
 * ever committed with a key here: then an earlier commit would be in its records, which the kit
 * already answered from. Before the commit, this store is added to the file (the first time, one
 * walk of the history also finds the keyed commits made before the file).
 */
export async function earlierCommit(
  repo: Repo,
  key: string,
  claim: KeyClaim | undefined,
  now = Date.now(),
): Promise<Outcome<string | undefined>> {
  const known = readKeyedStores(repo);
  const name = claim?.store ?? unnamedStore;
  if (
    claim?.fresh === true &&
    known !== null &&
    known !== undefined &&
    known.stores.size === 1 &&
    known.stores.has(name) &&
    now >= known.legacy + claim.ttlMs &&
    !known.unsure.has(keyHash(key))
  )
    return ok(undefined);
  const lines: string[] = [];
  let found: string | undefined;
  if (known === undefined) {
    const history = await keyedCommits(repo);
    found = history.commits.find((commit) => commit.keys.includes(key))?.sha;
    // A fold, not Math.max(...): a long history's keyed commits would overflow the call's arguments.
    const newest = history.complete
      ? history.commits.reduce((max, commit) => Math.max(max, commit.at), 0)
      : now;
    if (newest > 0) lines.push(`legacy ${newest}`);
  } else found = await findCommitByKey(repo, key);
  if (found !== undefined) return ok(found);
  // An unreadable file (too large, or lines of a newer version) is left as it is: every store searches.
  if (known !== null && known?.stores.has(name) !== true) lines.push(`store ${name}`);
  return lines.length === 0 ? ok(undefined) : appendLines(repo, lines);
}

/** The file's stores; undefined when there is none, null when it cannot be read as this version writes it. */
function readKeyedStores(repo: Repo): KeyedStores | undefined | null {
  const text = readSmall(repo.jail, path.join(repo.commonDir, keyedStoresFile));
  if (text === undefined || text === null) return text;
  const known: KeyedStores = { stores: new Set(), legacy: 0, unsure: new Set() };
  for (const line of text.split('\n')) {
    const [kind, value = ''] = line.split(' ', 2);
    if (kind === 'store' && /^[\w.-]{1,200}$/.test(value)) known.stores.add(value);
    else if (kind === 'legacy' && /^\d{1,16}$/.test(value))
      known.legacy = Math.max(known.legacy, Number(value));
    else if (kind === 'unsure' && /^[0-9a-f]{64}$/.test(value)) known.unsure.add(value);
    else if (line.length > 0) return null;
  }
  return known;
}

/**
 * Notes that a commit under `key` was interrupted and may have landed, before the interruption frees
 * the key: its retry then searches the history. Fails when the note cannot be written.
 */
export function noteInterrupted(repo: Repo, key: string): Outcome<undefined> {
  return appendLines(repo, [`unsure ${keyHash(key)}`]);
}

/** Appends the lines in one write and syncs them to disk before the commit they cover. */
function appendLines(repo: Repo, lines: readonly string[]): Outcome<undefined> {
  const file = path.join(repo.commonDir, keyedStoresFile);
  const refused = () =>
    fail('PRECONDITION_FAILED', `could not record this server's idempotency store in '${file}'`, {
      hint: "The server must be able to write in the repository's git directory, as it must to commit.",
    });
  let fd: number;
  try {
    const opened = repo.jail.openSync(
      file,
      fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT,
      0o644,
    );
    if (!opened.ok) return refused();
    fd = opened.value;
  } catch {
    return refused();
  }
  try {
    writeSync(fd, `${lines.join('\n')}\n`);
    fsyncSync(fd);
    return ok(undefined);
  } catch {
    return refused();
  } finally {
    closeSync(fd);
  }
}
