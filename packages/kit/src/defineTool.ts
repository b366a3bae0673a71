import * as z from 'zod';
import type { Truncation } from './bounds.js';
import type { Outcome, ToolError } from './errors.js';
import type { PathJail, ResolvedPath } from './jail.js';
import type { Logger } from './logger.js';
import type { Asked, Question } from './ask.js';
import type { CallRunOptions, ProcessResult } from './process.js';
import type { PrepareStep, ToolEffect } from './prepare.js';
import type { ToolPlan } from './preview.js';
import { extendInput, inputKeys, type AnyInputSchema, type AnyObjectSchema } from './inputSchema.js';

export type { AnyInputSchema, AnyObjectSchema } from './inputSchema.js';

export type { ToolEffect } from './prepare.js';

/** How a declared path argument is resolved: `existing` must exist (else NOT_FOUND); `any` may not yet. */
export type PathMode = 'existing' | 'any';

/** The argument names of an input, every alternative's for a union. */
type InputKeys<TInput extends AnyInputSchema> =
  z.output<TInput> extends infer TValue ? (TValue extends unknown ? keyof TValue & string : never) : never;

/** A tool's declaration of its path fields: which input fields hold paths, and how each resolves. */
export type PathDeclaration<TInput extends AnyInputSchema> = Partial<Record<InputKeys<TInput>, PathMode>>;

type ResolvedPresent<TValue> = TValue extends readonly unknown[] ? readonly ResolvedPath[] : ResolvedPath;
/** What one declared field resolves to: a path, a list for an array field, undefined when an optional field was not sent. */
type ResolvedField<TValue> = unknown extends TValue
  ? ResolvedPath | readonly ResolvedPath[] | undefined
  : undefined extends TValue
    ? ResolvedPresent<NonNullable<TValue>> | undefined
    : ResolvedPresent<TValue>;

/** A field's value in an input that may be a union: absent (undefined) in the alternatives without it. */
type FieldOf<TInput, TField extends PropertyKey> = TInput extends unknown
  ? TField extends keyof TInput
    ? TInput[TField]
    : undefined
  : never;

/** `ctx.paths`: the declared path fields, resolved, keyed by name — a typo is a compile error. */
export type ResolvedPathsOf<TInput, TDeclaration> = {
  readonly [TField in keyof TDeclaration & (TInput extends unknown ? keyof TInput : never)]: ResolvedField<
    FieldOf<TInput, TField>
  >;
};

export type Reconciled<TOutput> =
  { status: 'done'; value: TOutput } | { status: 'not_done' } | { status: 'failed'; error: ToolError };

export interface ToolContext<
  TPaths = Readonly<Record<string, ResolvedPath | readonly ResolvedPath[] | undefined>>,
  // unknown by default, so a helper taking `ToolContext` accepts every tool's context.
  TPrepared = unknown,
> {
  /** The declared path arguments, resolved in the jail (and held to the server's `prepare` policy). */
  readonly paths: TPaths;
  /**
   * What the server's `prepare` step handed this call (an opened repository, a resolved project),
   * for tools declared with `defineToolWith<TPrepared>()`; undefined for tools declared with `defineTool`.
   */
  readonly prepared: TPrepared;
  readonly server: string;
  readonly tool: string;
  /** Aborted when the client cancels or the call's timeout passes: stop work, write nothing half. */
  readonly signal: AbortSignal;
  /** The jail in force for this call (the server roots, narrowed by client roots when sent). */
  readonly jail: PathJail;
  readonly idempotencyKey: string | undefined;
  /**
   * What the idempotency store said of this call's key, when the call is keyed and the store names
   * itself (its `identity`); undefined otherwise. A tool whose effect also carries its key elsewhere
   * (git_commit's trailer) may skip looking for an earlier effect when the key is `fresh` and only
   * this store could have made one.
   */
  readonly keyClaim: KeyClaim | undefined;
  /**
   * This server process as an owner (`PID:RANDOM@HOST/PIDNS`): what its idempotency claims and tool
   * children carry. A tool that holds a lock of its own can name its holder with it (see `ownerIsGone`).
   */
  readonly owner: string;
  /** The request's `_meta` as the client sent it (e.g. an approval token); never written by the model. */
  readonly meta: Readonly<Record<string, unknown>> | undefined;
  readonly logger: Logger;
  /** @deprecated Use `ctx.paths.<field>`, whose names the compiler checks. */
  path(field: string): ResolvedPath;
  /** @deprecated Use `ctx.paths.<field>`, whose names the compiler checks. */
  pathList(field: string): readonly ResolvedPath[];
  /** Reports progress to the client when it asked for it (a progress token); otherwise a no-op. */
  progress(progress: number, total?: number, message?: string): void;
  /** Cursor state for this call (`undefined` when no cursor was passed), or INVALID_ARGUMENT. */
  decodeCursor(cursor: string | undefined): Outcome<unknown>;
  /** An opaque cursor bound to this tool and these arguments. */
  encodeCursor(state: unknown): string;
  /** The offset an `encodeCursor({ o: offset })` cursor carries (0 without a cursor), or INVALID_ARGUMENT. */
  cursorOffset(cursor: string | undefined): Outcome<number>;
  /** Cuts text to its budget; the cursor continues byte-exactly where the cut happened. */
  text(
    input: string | Buffer,
    options: { maxBytes: number; maxLines?: number | undefined; cursor?: string | undefined },
  ): Outcome<{ text: string; totalBytes: number; totalLines: number; truncated?: Truncation }>;
  /** Pages a list; following the cursors visits every item exactly once. */
  list<TItem>(
    items: readonly TItem[],
    options: { limit: number; cursor?: string | undefined },
  ): Outcome<{ items: TItem[]; total: number; truncated?: Truncation }>;
  /** Names who approved this call's effect, for its audit row. */
  setAuditActor(actor: string): void;
  /**
   * Runs a program under this call's signal and jail (see `runProcess`), its process group killed
   * on cancel, timeout or server shutdown. A cancelled call throws the call's CANCELLED or TIMEOUT
   * error; the run's own timeout throws TIMEOUT unless `onTimeout: 'result'`.
   */
  run(options: CallRunOptions): Promise<ProcessResult>;
  /**
   * Asks the person at the client a question (form-mode elicitation) on both protocol eras: on
   * 2026-07-28 connections through `input_required` with a sealed request state, on 2025-era ones
   * through `elicitation/create`. The first pass returns `pending` (return its `outcome`); the call
   * then comes back with the answer. `unsupported` when the client cannot show a form.
   */
  ask<TSchema extends z.ZodObject<z.ZodRawShape>>(question: Question<TSchema>): Asked<z.output<TSchema>>;
}

export interface ToolSpec<
  TInput extends AnyInputSchema,
  TOutput extends AnyObjectSchema,
  TPaths extends PathDeclaration<TInput> = PathDeclaration<TInput>,
  TPrepared = undefined,
> {
  /** snake_case, unique in the server. */
  name: string;
  title: string;
  /** What the tool does and when to use it; the model reads this. */
  description: string;
  input: TInput;
  output: TOutput;
  effect: ToolEffect;
  /** Touches something beyond the local machine (a network remote, a deploy target). */
  openWorld?: boolean;
  /**
   * A mutating tool whose repeat leaves the same end state (write this content, move to this ref).
   * Such a tool may be re-run after a crash without a reconcile step.
   */
  idempotent?: boolean;
  /** Input fields holding paths (a string or a string array), resolved in the jail before the handler runs. */
  paths?: TPaths;
  /** Input fields that do not shape the result (budgets), so a cursor stays valid when they change. */
  cursorIgnores?: readonly InputKeys<TInput>[];
  /** Per-call time limit (default: the server's). */
  timeoutMs?: number;
  /** The concise text rendering for clients that show the model only text. Default: JSON. */
  render?: (output: z.output<TOutput>) => string;
  /** Does the tool's job. Declare either `handler` or, for a tool whose effect can be previewed, `plan`. */
  handler?(
    input: z.output<TInput>,
    ctx: ToolContext<ResolvedPathsOf<z.output<TInput>, TPaths>, TPrepared>,
  ): Promise<Outcome<z.output<TOutput>>>;
  /**
   * The call as a plan (instead of `handler`): every check done and nothing changed yet, it returns
   * what the call would change (`effect`) and how to carry it out (`apply`). The kit applies a plan
   * with `apply`, and answers a preview request (`_meta["keel/preview"]: true`) with `effect` alone,
   * so the preview comes from the code that applies — and a call bound to a preview
   * (`_meta["keel/expect-preview"]`) recomputes it first and is refused if it changed. Mutating
   * tools only; tools/list marks them with `_meta: { "keel/preview": true }`.
   */
  plan?(
    input: z.output<TInput>,
    ctx: ToolContext<ResolvedPathsOf<z.output<TInput>, TPaths>, TPrepared>,
  ): Promise<Outcome<ToolPlan<z.output<TOutput>>>>;
  /**
   * The tool changes no file under the roots, whatever its input (staging, commits, refs): its plan's
   * effect is always empty and complete. tools/list says so (`_meta["keel/changes-no-files"]: true`),
   * so a client may size the call without a preview; the kit checks the plan's effect on every real
   * call and refuses, having changed nothing, one that breaks the declaration. Tools with `plan` only.
   */
  changesNoFiles?: boolean;
  /**
   * Crash recovery: called instead of re-running when an earlier run with the same idempotency key
   * died mid-way. Finds whether the effect happened (a commit trailer, a release id) and returns its
   * result, or says it did not happen so the handler runs.
   */
  reconcile?(
    input: z.output<TInput>,
    ctx: ToolContext<ResolvedPathsOf<z.output<TInput>, TPaths>, TPrepared>,
  ): Promise<Reconciled<z.output<TOutput>>>;
}

declare const preparedSlot: unique symbol;

/**
 * A tool with its types erased, as a server holds it. `TPrepared` is what its handler needs from the
 * server's `prepare` step: `AnyTool<Repo>` only fits a server whose step hands out a `Repo`, and
 * `AnyTool` (never) holds any tool.
 */
export interface AnyTool<TPrepared = never> {
  readonly spec: ToolSpec<AnyInputSchema, AnyObjectSchema, PathDeclaration<AnyInputSchema>, unknown>;
  /** The input schema the server validates against: the tool's, plus `idempotencyKey` on mutating tools. */
  readonly inputSchema: AnyInputSchema;
  readonly annotations: ToolAnnotationsOf;
  /** Declared with `defineToolWith`: the server's `prepare` step must hand it a value. */
  readonly readsPrepared: boolean;
  /** Types only: a handler that takes `TPrepared` (contravariant, so a tool needing less fits anywhere). */
  readonly [preparedSlot]?: (prepared: TPrepared) => void;
}

export interface ToolAnnotationsOf {
  title: string;
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** What the idempotency store said of a keyed call's key (see `ToolContext.keyClaim`). */
export interface KeyClaim {
  /** The store's identity: the same for every process sharing its records, new when they are lost. */
  readonly store: string;
  /** How long the store remembers a completed key. */
  readonly ttlMs: number;
  /**
   * The store had no record of the key (never claimed, or forgotten after `ttlMs` as every key is):
   * no earlier run of it through this store had an effect. False when this run recovers an
   * interrupted one.
   */
  readonly fresh: boolean;
}

export const idempotencyKeyArg = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
  .optional()
  .describe('A retry with the same key and arguments returns the first result, not a second effect.');

/** Derives the MCP annotations from a tool's declared effect. */
export function annotationsFor(
  spec: Pick<ToolSpec<AnyInputSchema, AnyObjectSchema>, 'title' | 'effect' | 'openWorld' | 'idempotent'>,
): ToolAnnotationsOf {
  const readOnly = spec.effect === 'read';
  return {
    title: spec.title,
    readOnlyHint: readOnly,
    destructiveHint: spec.effect === 'destructive',
    idempotentHint: readOnly || spec.idempotent === true,
    openWorldHint: spec.openWorld === true,
  };
}

/**
 * Declares a tool: schemas, effect and handler in one value. The kit's server wraps the handler in
 * its pipeline (validate, jail, prepare, idempotency, timeout, bounds, span, audit); the handler only
 * does the tool's job and returns `ok(value)` or `fail(code, message, { hint })`.
 */
export function defineTool<
  TInput extends AnyInputSchema,
  TOutput extends AnyObjectSchema,
  TPaths extends PathDeclaration<TInput> = Record<never, PathMode>,
>(spec: ToolSpec<TInput, TOutput, TPaths>): AnyTool<unknown> {
  return toolOf(spec, false);
}

/**
 * `defineTool` for tools whose handler reads what the server's `prepare` step returns, typed as
 * `ctx.prepared: TPrepared` (e.g. `defineToolWith<Repo>()({...})`). Such a tool fits only a server
 * whose step hands out a `TPrepared`; if the step hands it nothing, the call fails INTERNAL.
 */
export function defineToolWith<TPrepared>() {
  return <
    TInput extends AnyInputSchema,
    TOutput extends AnyObjectSchema,
    TPaths extends PathDeclaration<TInput> = Record<never, PathMode>,
  >(
    spec: ToolSpec<TInput, TOutput, TPaths, TPrepared>,
  ): AnyTool<TPrepared> => toolOf(spec, true);
}

function toolOf<TPrepared>(
  spec: Pick<
    ToolSpec<AnyInputSchema, AnyObjectSchema>,
    'name' | 'title' | 'effect' | 'openWorld' | 'idempotent' | 'input' | 'changesNoFiles'
  > & { handler?: unknown; plan?: unknown },
  readsPrepared: boolean,
): AnyTool<TPrepared> {
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(spec.name)) {
    throw new TypeError(`tool name '${spec.name}' must be snake_case`);
  }
  if ((spec.handler === undefined) === (spec.plan === undefined)) {
    throw new TypeError(`tool '${spec.name}' must declare exactly one of handler and plan`);
  }
  const mutating = spec.effect !== 'read';
  if (!mutating && spec.plan !== undefined) {
    throw new TypeError(`tool '${spec.name}' only reads; a plan is for tools that change something`);
  }
  if (spec.changesNoFiles === true && spec.plan === undefined) {
    throw new TypeError(
      `tool '${spec.name}' declares changesNoFiles without a plan; the kit checks the declaration against the plan's effect`,
    );
  }
  if (mutating && inputKeys(spec.input).has('idempotencyKey')) {
    throw new TypeError(
      `tool '${spec.name}' declares idempotencyKey itself; the kit adds it to mutating tools`,
    );
  }
  return {
    spec: spec as unknown as AnyTool['spec'],
    inputSchema: mutating ? extendInput(spec.input, { idempotencyKey: idempotencyKeyArg }) : spec.input,
    annotations: annotationsFor(spec),
    readsPrepared,
  };
}

/** A server's tools with the `prepare` step whose value their handlers read. */
export interface ToolSet<TPrepared> {
  tools: readonly AnyTool<TPrepared>[];
  prepare: PrepareStep<TPrepared>;
}

/**
 * Pairs tools with their server's `prepare` step so the compiler checks that every tool gets what its
 * handler reads. The result spreads into `createServer` options or a bin's `build` result.
 */
export function toolSet<TPrepared>(set: ToolSet<TPrepared>): ToolSet<TPrepared> {
  return set;
}
