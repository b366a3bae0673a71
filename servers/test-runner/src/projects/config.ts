import { readFile } from 'node:fs/promises';
import { KeelError } from '@keel/kit';
import * as z from 'zod';
import { commandFormats } from '../frameworks/command.js';
import { frameworkNames } from '../frameworks/types.js';
import type { ConfiguredProject } from './detect.js';

const frameworkProject = z.object({
  dir: z.string().min(1).describe('Project directory, relative to the first root.'),
  framework: z.enum(frameworkNames.filter((name) => name !== 'command') as [string, ...string[]]),
  command: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe(
      'Program and leading arguments that replace the template’s (e.g. ["python3.12", "-m", "pytest"]).',
    ),
});

const commandProject = z
  .object({
    name: z
      .string()
      .regex(/^[\w.-]{1,64}$/, 'letters, digits, _ . - (at most 64)')
      .describe('The project id is `<dir>:<name>`.'),
    dir: z.string().min(1).default('.').describe('Where the command runs, relative to the first root.'),
    command: z
      .array(z.string().min(1))
      .min(1)
      .describe('Program and arguments, e.g. ["npm", "test"]; no shell.'),
    format: z.enum(commandFormats).default('auto').describe('How its output is read.'),
    report: z
      .string()
      .min(1)
      .optional()
      .describe('The JUnit XML file it writes, relative to dir (format junit).'),
  })
  .strict();

const configSchema = z.object({
  projects: z.array(z.union([frameworkProject.strict(), commandProject])).max(1000),
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
      `config file '${file}' is not valid: ${issuesOf(parsed.error).join('; ')}`,
      {
        hint: `Each project needs dir and framework (one of ${frameworkNames.filter((n) => n !== 'command').join(', ')}) with an optional command, or name and command (a test command run as it is) with optional dir, format (${commandFormats.join(', ')}) and report.`,
      },
    );
  }
  return parsed.data.projects.map((p): ConfiguredProject =>
    'name' in p
      ? {
          dir: p.dir,
          framework: 'command',
          name: p.name,
          command: {
            argv: p.command,
            format: p.format,
            ...(p.report === undefined ? {} : { report: p.report }),
          },
        }
      : {
          dir: p.dir,
          framework: p.framework as ConfiguredProject['framework'],
          ...(p.command === undefined ? {} : { launcher: p.command }),
        },
  );
}

/** The leaf issues, with union branches flattened so a person reads what is wrong, not "invalid input". */
function issuesOf(error: z.ZodError): string[] {
  const out: string[] = [];
  const visit = (issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]) => {
    for (const issue of issues) {
      const where = [...prefix, ...issue.path];
      if (issue.code === 'invalid_union' && issue.errors.length > 0) {
        // The branch that got furthest explains the entry best.
        const best = [...issue.errors].sort((a, b) => a.length - b.length)[0]!;
        visit(best, where);
      } else out.push(`${where.map(String).join('.')}: ${issue.message}`);
    }
  };
  visit(error.issues, []);
  return out;
}
