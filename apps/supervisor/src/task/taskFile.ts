import path from 'node:path';
import { z } from 'zod';
import { KeelError } from '@keel/kit/core';
import { formatIssues, readStructuredFile } from '../config/load.js';
import { limitsSchema } from '../config/schema.js';
import { playbookSchema } from '../models/playbook.js';

/** A task file (`keel run TASKFILE`): what to do, how, under which limits. */
export const taskFileSchema = z
  .object({
    type: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/)
      .describe('groups tasks in stats, e.g. "bugfix"'),
    title: z.string().min(1).max(200),
    description: z.string().min(1).max(20_000).describe('what the planning agent is asked to do'),
    mode: z.enum(['orchestrated', 'single']).default('orchestrated'),
    limits: limitsSchema.partial().default({}),
    tests: z
      .object({
        project: z.string().optional().describe('test-runner project id or directory; default: the only one'),
      })
      .strict()
      .nullable()
      .default({}),
    deploy: z
      .union([
        z.object({ environment: z.string().min(1) }).strict(),
        z.object({ environments: z.array(z.string().min(1)).min(1).max(10) }).strict(),
      ])
      .nullable()
      .default(null)
      .transform((deploy) =>
        deploy === null
          ? null
          : { environments: 'environment' in deploy ? [deploy.environment] : deploy.environments },
      )
      .describe(
        'deploy after the tests pass, to each environment in order (e.g. staging, then production); null: no deploy',
      ),
    playbook: playbookSchema.optional().describe('the script of the playbook model, per agent'),
  })
  .strict();
export type TaskFile = z.infer<typeof taskFileSchema>;

export function parseTaskFile(value: unknown, name: string): TaskFile {
  const parsed = taskFileSchema.safeParse(value);
  if (!parsed.success) {
    const lines = formatIssues(parsed.error.issues);
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${name} has ${lines.length} mistake(s):\n  ${lines.join('\n  ')}`,
      {
        hint: 'a task file needs type, title and description; see `keel run --help`',
        details: { issues: lines },
      },
    );
  }
  return parsed.data;
}

export function loadTaskFile(file: string): TaskFile {
  return parseTaskFile(readStructuredFile(path.resolve(file)), path.basename(file));
}
