import { readFile } from 'node:fs/promises';
import { KeelError } from '@keel/kit';
import * as z from 'zod';
import { frameworkNames } from '../frameworks/types.js';
import type { ConfiguredProject } from './detect.js';

const configSchema = z.object({
  projects: z
    .array(
      z.object({
        dir: z.string().min(1).describe('Project directory, relative to the first root.'),
        framework: z.enum(frameworkNames),
        command: z
          .array(z.string().min(1))
          .min(1)
          .optional()
          .describe(
            'Program and leading arguments that replace the template’s (e.g. ["python3.12", "-m", "pytest"]).',
          ),
      }),
    )
    .max(1000),
});

/**
 * Reads the projects file a person passes with `--config`. It is the one place a command other
 * than the server's templates can come from, and it is read at start-up, never from a tool call.
 */
export async function loadProjectsConfig(file: string): Promise<ConfiguredProject[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new KeelError(
      'INVALID_ARGUMENT',
      `config file '${file}' cannot be read as JSON: ${(error as Error).message}`,
      {
        hint: 'Pass a JSON file like {"projects":[{"dir":"api","framework":"pytest"}]}.',
      },
    );
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new KeelError(
      'INVALID_ARGUMENT',
      `config file '${file}' is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      {
        hint: `Each project needs dir and framework (one of ${frameworkNames.join(', ')}); command is optional.`,
      },
    );
  }
  return parsed.data.projects.map((p) => ({
    dir: p.dir,
    framework: p.framework,
    ...(p.command === undefined ? {} : { launcher: p.command }),
  }));
}
