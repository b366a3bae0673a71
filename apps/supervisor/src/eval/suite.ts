import path from 'node:path';
import { z } from 'zod';
import { KeelError } from '@keel/kit/core';
import { formatIssues, readStructuredFile } from '../config/load.js';
import { limitsSchema, sideEffectsSchema } from '../config/schema.js';

const checksSchema = z
  .object({
    tests: z
      .object({
        command: z.array(z.string()).min(1).describe('run in the task copy afterwards; exit 0 passes'),
        timeoutMs: z.number().int().positive().default(120_000),
      })
      .strict()
      .optional(),
    allowedPaths: z
      .array(z.string())
      .min(1)
      .optional()
      .describe('globs: every path changed or added since the starting commit must match one'),
    review: z.enum(['approve', 'request_changes']).optional().describe("the last review's verdict"),
    deploy: z.literal('live').optional().describe('the deploy ended live (its health check passed)'),
  })
  .strict();

const taskSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/),
    repo: z
      .string()
      .describe('a directory copied fresh for every run (made a git repository if it is not one)'),
    task: z.string().describe('the task file, relative to the suite'),
    checks: checksSchema.default({}),
  })
  .strict();

const configurationSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/),
    model: z.string().describe('a key of models'),
    mode: z.enum(['orchestrated', 'single']),
    limits: limitsSchema.partial().default({}),
    sideEffects: sideEffectsSchema.partial().default({}),
  })
  .strict();

/** An eval suite: tasks × configurations, each pair run `repeat` times on a fresh copy. */
export const suiteSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/),
    seed: z.number().int().nonnegative().default(1),
    repeat: z.number().int().positive().max(1000).default(3),
    chatServer: z
      .string()
      .optional()
      .describe(
        'a module (relative to the suite) exporting startChatServer({ seed }) → { url, close }: a local model endpoint started afresh for every run; `{{chat}}` in a baseURL names it',
      ),
    chatServerOptions: z
      .record(z.string(), z.unknown())
      .default({})
      .describe('passed to startChatServer beside the seed (the sample: wrongPatchRate, catchRate)'),
    models: z.record(z.string(), z.record(z.string(), z.unknown())),
    prices: z
      .record(z.string(), z.object({ inputPerMTok: z.number(), outputPerMTok: z.number() }))
      .default({}),
    tasks: z.array(taskSchema).min(1),
    configurations: z.array(configurationSchema).min(1),
  })
  .strict()
  .superRefine((suite, ctx) => {
    for (const [i, c] of suite.configurations.entries())
      if (!(c.model in suite.models))
        ctx.addIssue({
          code: 'custom',
          path: ['configurations', i, 'model'],
          message: `'${c.model}' is not a key of models`,
        });
  });

export type EvalSuite = z.infer<typeof suiteSchema>;
export type EvalTask = EvalSuite['tasks'][number];
export type EvalConfiguration = EvalSuite['configurations'][number];

export interface LoadedSuite {
  suite: EvalSuite;
  file: string;
  dir: string;
}

export function loadSuite(file: string): LoadedSuite {
  const absolute = path.resolve(file);
  const parsed = suiteSchema.safeParse(readStructuredFile(absolute));
  if (!parsed.success) {
    const lines = formatIssues(parsed.error.issues);
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${path.basename(absolute)} has ${lines.length} mistake(s):\n  ${lines.join('\n  ')}`,
      {
        hint: 'an eval suite needs name, models, tasks and configurations; see the supervisor README',
      },
    );
  }
  return { suite: parsed.data, file: absolute, dir: path.dirname(absolute) };
}
