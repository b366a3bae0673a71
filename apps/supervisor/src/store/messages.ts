import { sha256Hex } from '@keel/kit';
import type { DecodeJson } from './rows.js';
import { all, run, type Work } from './statements.js';

/**
 * Model call requests, stored so a task's store grows with its length rather than its square.
 * Each request resends the whole conversation, the tool list and the system prompt; stored whole,
 * step n repeats steps 1..n-1. Here every message and every tool list is stored once per task in
 * `message_blobs` (content-addressed by the sha256 of its JSON, counted by the requests
 * that refer to it), and a request row keeps only the references plus its own small fields
 * (`maxTokens`, the compaction decision). Reading joins them back into the request as it was.
 */

/** Marks a request row in reference form (a request never has this key). */
export const refsKey = '$refs';

/** A request in reference form: message and tool-list hashes in order, the rest as it was. */
interface StoredRequest {
  [refsKey]: 1;
  messages: string[];
  tools: string | null;
  [field: string]: unknown;
}

export interface Blob {
  sha256: string;
  body: string;
}

const isRequest = (value: unknown): value is { messages: unknown[]; tools?: unknown } =>
  typeof value === 'object' && value !== null && Array.isArray((value as { messages?: unknown }).messages);

const isStored = (value: unknown): value is StoredRequest =>
  typeof value === 'object' && value !== null && (value as Record<string, unknown>)[refsKey] === 1;

/**
 * JSON as written, not canonical: key order is part of what was sent (a tool call's arguments).
 * Made once per object: a request resends the conversation's earlier messages as the same objects
 * (never changed once made), so each step hashes only what it added.
 */
const made = new WeakMap<object, Blob>();
const blobOf = (value: unknown): Blob => {
  const known = typeof value === 'object' && value !== null ? made.get(value) : undefined;
  if (known !== undefined) return known;
  const body = JSON.stringify(value);
  const blob = { sha256: sha256Hex(body), body };
  if (typeof value === 'object' && value !== null) made.set(value, blob);
  return blob;
};

/**
 * A request as references and the bodies they name (a message repeated is named twice, counted
 * twice). Anything that is not a `{ messages, tools? }` request is kept as it is.
 */
export function splitRequest(request: unknown): { stored: unknown; blobs: Blob[] } {
  if (!isRequest(request)) return { stored: request, blobs: [] };
  const { messages, tools, ...rest } = request;
  const blobs = messages.map(blobOf);
  const toolBlob = tools === undefined ? null : blobOf(tools);
  if (toolBlob !== null) blobs.push(toolBlob);
  const stored: StoredRequest = {
    ...rest,
    [refsKey]: 1,
    messages: blobs.slice(0, messages.length).map((b) => b.sha256),
    tools: toolBlob?.sha256 ?? null,
  };
  return { stored, blobs };
}

/** The hashes a stored request refers to, once per reference. */
export function refsOf(stored: unknown): string[] {
  if (!isStored(stored)) return [];
  return stored.tools === null ? [...stored.messages] : [...stored.messages, stored.tools];
}

/** A stored request joined back with its bodies; one whose bodies are gone reads as null. */
export function joinRequest(stored: unknown, bodies: ReadonlyMap<string, unknown>): unknown {
  if (!isStored(stored)) return stored;
  const { [refsKey]: _marker, messages, tools, ...rest } = stored;
  const parts = [...messages, ...(tools === null ? [] : [tools])];
  if (parts.some((sha) => !bodies.has(sha))) return null;
  return {
    ...rest,
    messages: messages.map((sha) => bodies.get(sha)),
    ...(tools === null ? {} : { tools: bodies.get(tools) }),
  };
}

const upsertBlob = `INSERT INTO message_blobs (task_id, sha256, body, refs) VALUES (?, ?, ?, ?)
  ON CONFLICT (task_id, sha256) DO UPDATE SET refs = message_blobs.refs + excluded.refs`;

/** How many hashes one reference bump names; shorter lists are padded with '' (never a hash), so it is one statement. */
const bumpWidth = 64;
const bumpRefs = `UPDATE message_blobs SET refs = refs + ? WHERE task_id = ? AND sha256 IN (${Array.from(
  { length: bumpWidth },
  () => '?',
).join(', ')}) RETURNING sha256`;

/**
 * The tasks each body is known to be stored for, by this process: a hint only. A request resends
 * the conversation so far, so all but its newest bodies are already stored; those get their count
 * raised by hash (no body sent to the database), and one the hint was wrong about (rolled back,
 * purged, another store) is found missing by the bump and stored whole. So correctness never rests
 * on the hint, and a step writes the bodies it added plus one statement per {@link bumpWidth} references.
 */
const storedFor = new WeakMap<Blob, Set<string>>();

/** Stores a request's bodies (once per task) and returns the request's reference form. */
export function* storeRequest(taskId: string, request: unknown): Work<unknown> {
  const { stored, blobs } = splitRequest(request);
  // References per body: a message repeated in one request counts once per place.
  const counts = new Map<Blob, number>();
  for (const blob of blobs) counts.set(blob, (counts.get(blob) ?? 0) + 1);
  const fresh: Blob[] = [];
  const known = new Map<number, Blob[]>();
  for (const [blob, n] of counts) {
    if (storedFor.get(blob)?.has(taskId) !== true) fresh.push(blob);
    else if (known.has(n)) known.get(n)!.push(blob);
    else known.set(n, [blob]);
  }
  for (const [n, group] of known)
    for (let start = 0; start < group.length; start += bumpWidth) {
      const chunk = group.slice(start, start + bumpWidth);
      const hashes = chunk.map((blob) => blob.sha256);
      const padding = Array.from({ length: bumpWidth - hashes.length }, () => '');
      const bumped = new Set(
        (yield* all(bumpRefs, [n, taskId, ...hashes, ...padding])).map((row) => row['sha256'] as string),
      );
      for (const blob of chunk) if (!bumped.has(blob.sha256)) fresh.push(blob);
    }
  for (const blob of fresh) {
    yield* run(upsertBlob, [taskId, blob.sha256, blob.body, counts.get(blob)]);
    const tasks = storedFor.get(blob) ?? new Set<string>();
    tasks.add(taskId);
    storedFor.set(blob, tasks);
  }
  return stored;
}

/** Every body a task's requests refer to, parsed, by hash. */
export function* taskBodies(taskId: string): Work<Map<string, unknown>> {
  const rows = yield* all('SELECT sha256, body FROM message_blobs WHERE task_id = ?', [taskId]);
  return new Map(rows.map((row) => [row['sha256'] as string, JSON.parse(row['body'] as string) as unknown]));
}

/**
 * Drops the references of requests about to be purged: each body loses one count per reference,
 * and a body no request refers to any more is deleted.
 */
export function* releaseRequests(
  rows: ReadonlyArray<{ taskId: string; request: unknown }>,
  decode: DecodeJson,
): Work<number> {
  const counts = new Map<string, { taskId: string; sha256: string; n: number }>();
  for (const row of rows)
    for (const sha256 of refsOf(decode(row.request))) {
      const key = `${row.taskId}\n${sha256}`;
      const entry = counts.get(key) ?? { taskId: row.taskId, sha256, n: 0 };
      entry.n++;
      counts.set(key, entry);
    }
  for (const { taskId, sha256, n } of counts.values())
    yield* run('UPDATE message_blobs SET refs = refs - ? WHERE task_id = ? AND sha256 = ?', [
      n,
      taskId,
      sha256,
    ]);
  return yield* run('DELETE FROM message_blobs WHERE refs <= 0');
}
