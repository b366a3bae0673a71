import { z } from 'zod';
import { count } from './common.js';

/**
 * How a task stands. `queued`: submitted for a `keel worker` to take; `starting`: claimed by the
 * process that runs it, its servers starting (a kill or the global stop already finds it); `waiting`: an irreversible call waits for a human's approval; `escalated`: a
 * loop or a limit waits for a human to continue or abort; `limit` names the limit it reached.
 */
export const taskStatuses = [
  'queued',
  'starting',
  'running',
  'waiting',
  'succeeded',
  'failed',
  'limit',
  'escalated',
  'killed',
  'error',
] as const;
export type TaskStatus = (typeof taskStatuses)[number];

/** The limit kinds the harness enforces before every call. */
export const limitKinds = [
  'steps',
  'tokens',
  'wall_clock',
  'tool_calls',
  'money',
  'files_changed',
  'lines_changed',
  'protected_path',
  'review_rounds',
  'test_rounds',
  'contract_retries',
  'context_window',
] as const;
export type LimitKind = (typeof limitKinds)[number];

/** The record of one task run: what the harness stores and the console, stats and evals read. */
export const taskRunV1 = z
  .object({
    version: z.literal('taskRun.v1'),
    id: z.string().min(1),
    type: z.string().min(1),
    mode: z.enum(['orchestrated', 'single']),
    startedAt: z.iso.datetime(),
    endedAt: z.iso.datetime().nullable(),
    status: z.enum(taskStatuses),
    outcome: z
      .object({
        message: z.string(),
        limit: z.enum(limitKinds).optional(),
        /** For a limit crossed by a misreporting provider: how far past the limit usage went. */
        overshoot: z.number().optional(),
        loop: z.enum(['repeat', 'ping_pong', 'no_progress']).optional(),
      })
      .strict(),
    steps: count,
    tokens: z
      .object({
        input: count,
        output: count,
        cachedInput: count
          .optional()
          .describe(
            'of `input`, the tokens the provider reported as read from its prompt cache (absent: none)',
          ),
      })
      .strict(),
    costUsd: z.number().nonnegative(),
    approvalsAsked: count,
    toolCalls: z
      .array(
        z
          .object({
            server: z.string(),
            tool: z.string(),
            latencyMs: z.number().nonnegative(),
            ok: z.boolean(),
            irreversible: z.boolean(),
          })
          .strict(),
      )
      .describe('every tool call, in order'),
    error: z.object({ code: z.string(), message: z.string() }).strict().optional(),
  })
  .strict();

export type TaskRunV1 = z.infer<typeof taskRunV1>;
