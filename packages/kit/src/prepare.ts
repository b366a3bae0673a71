/**
 * The step a server runs before every handler, and what it sees: the kit's pipeline calls it, tools
 * declare they read its value. A leaf module, so the tool definitions and the server options can
 * both name it without importing each other.
 */
import type { Outcome } from './errors.js';
import type { PathJail, ResolvedPath } from './jail.js';
import type { Logger } from './logger.js';
import type { CallRunOptions, ProcessResult } from './process.js';

/**
 * What a tool does to the world. The kit derives the MCP annotations from it, so they cannot drift
 * from the tool: `read` never changes anything; `write` changes state in a way a later call can
 * undo; `destructive` loses data or cannot be taken back.
 */
export type ToolEffect = 'read' | 'write' | 'destructive';

/** What a server's `prepare` step sees of a call. */
export interface PreparedCall {
  tool: string;
  effect: ToolEffect;
  input: Readonly<Record<string, unknown>>;
  /** The declared path fields, resolved, by field name (a list for an array field). */
  paths: ReadonlyMap<string, ResolvedPath | readonly ResolvedPath[]>;
  jail: PathJail;
  meta: Readonly<Record<string, unknown>> | undefined;
  /** The tool reads the step's value (`defineToolWith`): returning undefined for it fails the call. */
  readsPrepared: boolean;
  /** Aborted when the client cancels or the call's timeout passes. */
  signal: AbortSignal;
  logger: Logger;
  /** `ctx.run` of the call: a program under the call's signal, jail and process groups. */
  run(options: CallRunOptions): Promise<ProcessResult>;
}

/**
 * A server's step before every handler. It refuses the call with a failure, or lets it through with
 * the value the handler gets as `ctx.prepared` (undefined for tools that do not read one).
 * `PrepareStep` (unknown) holds any step.
 */
export type PrepareStep<TPrepared = unknown> = (
  call: PreparedCall,
) => Outcome<TPrepared | undefined> | Promise<Outcome<TPrepared | undefined>>;
