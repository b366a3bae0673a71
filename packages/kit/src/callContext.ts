import type { CallAbort } from './abort.js';
import { sliceList, sliceText, type Truncation } from './bounds.js';
import { ask, type AskContext, type Asked, type Question, type RequestStateSealer } from './ask.js';
import { callFingerprint } from './canonical.js';
import type { CursorBinding, CursorCodec } from './cursor.js';
import type * as z from 'zod';
import type { AnyTool, KeyClaim, ToolContext } from './defineTool.js';
import { KeelError, ok, type Outcome } from './errors.js';
import type { PathJail, ResolvedPath } from './jail.js';
import type { Logger } from './logger.js';
import { runProcess, type CallRunOptions, type ProcessResult } from './process.js';
import type { ProcessGroups } from './processGroups.js';

/** What a handler's context reads of its call (the pipeline's per-call state provides it). */
export interface CallContextInit {
  readonly server: string;
  readonly spec: AnyTool['spec'];
  readonly input: Record<string, unknown>;
  readonly jail: PathJail;
  readonly idempotencyKey: string | undefined;
  readonly meta: Readonly<Record<string, unknown>> | undefined;
  auditActor: string | undefined;
  readonly resolved: Map<string, ResolvedPath | ResolvedPath[]> | undefined;
  readonly prepared: unknown;
  readonly abort: CallAbort;
  readonly cursors: CursorCodec;
  readonly logger: Logger;
  readonly processes: ProcessGroups;
  /** This server process as a claim owner; its tool children carry it (see `ownerIsGone`). */
  readonly owner: string;
  readonly asking: AskContext | undefined;
  readonly sealer: RequestStateSealer;
  now(): number;
  readonly onProgress:
    ((progress: { progress: number; total?: number; message?: string }) => Promise<void> | void) | undefined;
}

/**
 * What a handler sees of its call. A class rather than an object of closures: one allocation per
 * call instead of a dozen, which shows on trivial tools.
 */
export class CallContext implements ToolContext<
  Readonly<Record<string, ResolvedPath | readonly ResolvedPath[] | undefined>>,
  unknown
> {
  readonly server: string;
  readonly tool: string;
  readonly jail: PathJail;
  readonly idempotencyKey: string | undefined;
  readonly keyClaim: KeyClaim | undefined;
  /** Progress notifications still being written; the result waits for them. */
  pendingProgress: Promise<unknown>[] | undefined;
  readonly #init: CallContextInit;
  #logger: Logger | undefined;
  #binding: CursorBinding | undefined;

  constructor(init: CallContextInit, keyClaim?: KeyClaim) {
    this.#init = init;
    this.keyClaim = keyClaim;
    this.server = init.server;
    this.tool = init.spec.name;
    this.jail = init.jail;
    this.idempotencyKey = init.idempotencyKey;
  }

  get signal(): AbortSignal {
    return this.#init.abort.signal;
  }

  get meta(): Readonly<Record<string, unknown>> | undefined {
    return this.#init.meta;
  }

  get owner(): string {
    return this.#init.owner;
  }

  get prepared(): unknown {
    return this.#init.prepared;
  }

  setAuditActor(actor: string): void {
    this.#init.auditActor = actor;
  }

  #paths: Record<string, ResolvedPath | readonly ResolvedPath[] | undefined> | undefined;

  get paths(): Readonly<Record<string, ResolvedPath | readonly ResolvedPath[] | undefined>> {
    if (this.#paths === undefined) {
      this.#paths = Object.create(null) as Record<string, ResolvedPath | readonly ResolvedPath[] | undefined>;
      for (const [field, value] of this.#init.resolved ?? []) this.#paths[field] = value;
      Object.freeze(this.#paths);
    }
    return this.#paths;
  }

  get logger(): Logger {
    return (this.#logger ??= this.#init.logger.child({ tool: this.tool }));
  }

  path(field: string): ResolvedPath {
    const value = this.#init.resolved?.get(field);
    if (value === undefined || Array.isArray(value)) {
      throw new KeelError('INTERNAL', `tool ${this.tool} did not declare path field '${field}'`);
    }
    return value;
  }

  pathList(field: string): readonly ResolvedPath[] {
    const value = this.#init.resolved?.get(field);
    if (value === undefined) return [];
    return Array.isArray(value) ? value : [value];
  }

  progress(progress: number, total?: number, message?: string): void {
    const sent = this.#init.onProgress?.({
      progress,
      ...(total === undefined ? {} : { total }),
      ...(message === undefined ? {} : { message }),
    });
    if (sent !== undefined) (this.pendingProgress ??= []).push(sent);
  }

  decodeCursor(cursor: string | undefined): Outcome<unknown> {
    return cursor === undefined ? ok(undefined) : this.#init.cursors.decode(this.#cursorBinding(), cursor);
  }

  encodeCursor(state: unknown): string {
    return this.#init.cursors.encode(this.#cursorBinding(), state);
  }

  text(
    input: string | Buffer,
    options: { maxBytes: number; maxLines?: number | undefined; cursor?: string | undefined },
  ): Outcome<{ text: string; totalBytes: number; totalLines: number; truncated?: Truncation }> {
    const offset = this.cursorOffset(options.cursor);
    if (!offset.ok) return offset;
    const slice = sliceText(input, {
      offset: offset.value,
      maxBytes: options.maxBytes,
      ...(options.maxLines === undefined ? {} : { maxLines: options.maxLines }),
    });
    // totalLines stays a getter: counting the lines of a large input is skipped unless someone reads it.
    const result: { text: string; totalBytes: number; readonly totalLines: number; truncated?: Truncation } =
      {
        text: slice.text,
        totalBytes: slice.totalBytes,
        get totalLines() {
          return slice.totalLines;
        },
      };
    if (slice.nextOffset !== undefined) {
      const nextCursor = this.encodeCursor({ o: slice.nextOffset });
      result.truncated =
        slice.cutBy === 'lines'
          ? { limit: options.maxLines ?? 0, unit: 'lines', total: slice.totalLines, nextCursor }
          : { limit: options.maxBytes, unit: 'bytes', total: slice.totalBytes, nextCursor };
    }
    return ok(result);
  }

  list<TItem>(
    items: readonly TItem[],
    options: { limit: number; cursor?: string | undefined },
  ): Outcome<{ items: TItem[]; total: number; truncated?: Truncation }> {
    const offset = this.cursorOffset(options.cursor);
    if (!offset.ok) return offset;
    const slice = sliceList(items, { offset: offset.value, limit: options.limit });
    const result: { items: TItem[]; total: number; truncated?: Truncation } = {
      items: slice.items,
      total: slice.total,
    };
    if (slice.nextOffset !== undefined) {
      result.truncated = {
        limit: options.limit,
        unit: 'items',
        total: slice.total,
        nextCursor: this.encodeCursor({ o: slice.nextOffset }),
      };
    }
    return ok(result);
  }

  async run(options: CallRunOptions): Promise<ProcessResult> {
    const { onTimeout, timeoutHint, ...rest } = options;
    const abort = this.#init.abort;
    if (abort.reason !== undefined) throw abort.reason;
    const result = await runProcess({
      ...rest,
      signal: this.signal,
      jail: this.jail,
      groups: this.#init.processes,
      owner: this.#init.owner,
    });
    // The call was cancelled or ran out of time: the pipeline's reason says which.
    if (result.cancelled || abort.reason !== undefined)
      throw abort.reason ?? new KeelError('CANCELLED', `${commandLabel(options)} was cancelled`);
    if (result.timedOut && onTimeout !== 'result') {
      throw new KeelError(
        'TIMEOUT',
        `${commandLabel(options)} did not finish within ${options.timeoutMs} ms`,
        {
          hint: timeoutHint ?? 'Narrow the request (fewer files, a smaller range) or raise the timeout.',
        },
      );
    }
    return result;
  }

  ask<TSchema extends z.ZodObject<z.ZodRawShape>>(question: Question<TSchema>): Asked<z.output<TSchema>> {
    const init = this.#init;
    return ask(question, {
      context: init.asking,
      sealer: init.sealer,
      callId: callFingerprint(this.server, this.tool, init.input),
      now: init.now(),
    });
  }

  /** The arguments that shape the result: all but the cursor itself and the declared budgets. */
  #cursorBinding(): CursorBinding {
    if (this.#binding === undefined) {
      const args = { ...this.#init.input };
      delete args['cursor'];
      for (const field of this.#init.spec.cursorIgnores ?? []) delete args[field];
      this.#binding = { server: this.server, tool: this.tool, args };
    }
    return this.#binding;
  }

  /** The position a `{ o }` cursor of `text`/`list` (or a tool's own offset cursor) carries; 0 without one. */
  cursorOffset(cursor: string | undefined): Outcome<number> {
    const state = this.decodeCursor(cursor);
    if (!state.ok) return state;
    const offset = (state.value as { o?: unknown } | undefined)?.o;
    return ok(typeof offset === 'number' && Number.isInteger(offset) && offset >= 0 ? offset : 0);
  }
}

function commandLabel(options: CallRunOptions): string {
  const program = options.command.split('/').pop() ?? options.command;
  return options.args[0] === undefined ? program : `${program} ${options.args[0]}`;
}
