import { budgetArg, cursorArg, defineTool, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import type { TestRunnerTool } from '../projects/prepare.js';
import type { RunnerDeps } from '../runs/execute.js';
import {
  errorSchema,
  failureSchema,
  fileSummarySchema,
  projectRefSchema,
  sandboxOf,
  sandboxSchema,
  totalsSchema,
} from '../runs/present.js';
import { describeSandbox } from '../runs/sandboxed.js';
import { outcomes } from '../runs/record.js';
import { loadRun } from '../runs/store.js';

export const runIdArg = z
  .string()
  .min(1)
  .max(64)
  .describe('A runId returned by run_tests, rerun_failed or classify_flaky.');

const sections = ['failures', 'errors', 'files', 'stdout', 'stderr'] as const;

/** `get_run`: a stored run, one section at a time, paged. */
export function getRunTool(deps: RunnerDeps): TestRunnerTool {
  return defineTool({
    name: 'get_run',
    title: 'Get a past run',
    description:
      'Reads a stored run by runId: its outcome and totals, plus one section paged with a cursor — failures, errors (load/compile), files (per-file counts), or the captured stdout/stderr.',
    input: z.object({
      runId: runIdArg,
      section: z.enum(sections).default('failures').describe('What to page through.'),
      limit: budgetArg({ default: 20, max: 200, unit: 'items', what: 'failures, errors or files' }),
      maxBytes: budgetArg({ default: 16_384, max: 262_144, unit: 'bytes', what: 'log text' }),
      cursor: cursorArg,
    }),
    output: z.object({
      runId: z.string(),
      createdAt: z.string(),
      project: projectRefSchema,
      selection: z.object({ files: z.array(z.string()), testNamePattern: z.string().optional() }),
      outcome: z.enum(outcomes),
      reason: z.string().optional(),
      totals: totalsSchema,
      durationMs: z.number(),
      sandbox: sandboxSchema,
      section: z.enum(sections),
      failures: z.array(failureSchema).optional(),
      errors: z.array(errorSchema).optional(),
      files: z.array(fileSummarySchema).optional(),
      text: z.string().optional().describe('The log page (stdout/stderr sections).'),
      total: z.number().describe('Items in the section, or bytes of the log.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    cursorIgnores: ['limit', 'maxBytes'],
    render: renderGetRun,
    handler: async (input, ctx) => {
      const loaded = await loadRun(deps.store, input.runId);
      if (!loaded.ok) return loaded;
      const record = loaded.value;
      const head = {
        runId: record.runId,
        createdAt: record.createdAt,
        project: record.project,
        selection: record.selection,
        outcome: record.outcome,
        ...(record.reason === undefined ? {} : { reason: record.reason }),
        totals: record.totals,
        durationMs: record.durationMs,
        sandbox: sandboxOf(record),
        section: input.section,
      };
      if (input.section === 'stdout' || input.section === 'stderr') {
        const page = ctx.text(record[input.section], { maxBytes: input.maxBytes, cursor: input.cursor });
        if (!page.ok) return page;
        return ok({
          ...head,
          text: page.value.text,
          total: page.value.totalBytes,
          ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
        });
      }
      const items: readonly unknown[] = record[input.section];
      const page = ctx.list(items, { limit: input.limit, cursor: input.cursor });
      if (!page.ok) return page;
      return ok({
        ...head,
        [input.section]: page.value.items,
        total: page.value.total,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      } as never);
    },
  });
}

/** get_run as text: the run's headline, then the section's page, then where the next page starts. */
function renderGetRun(out: {
  runId: string;
  project: { id: string };
  outcome: string;
  reason?: string | undefined;
  totals: { total: number; passed: number; failed: number; skipped: number };
  durationMs: number;
  sandbox: { kind: 'bwrap' | 'none'; reason?: string | undefined };
  section: (typeof sections)[number];
  failures?:
    | Array<{ name: string; file?: string | undefined; line?: number | undefined; message: string }>
    | undefined;
  errors?: Array<{ file?: string | undefined; message: string }> | undefined;
  files?: Array<{ file: string; total: number; passed: number; failed: number; skipped: number }> | undefined;
  text?: string | undefined;
  total: number;
  truncated?: { nextCursor?: string | undefined } | undefined;
}): string {
  const t = out.totals;
  const lines = [
    `${out.project.id}: ${out.outcome.toUpperCase()} — ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped of ${t.total} in ${out.durationMs} ms [${out.runId}]`,
  ];
  if (out.reason !== undefined) lines.push(`reason: ${out.reason}`);
  lines.push(describeSandbox(out.sandbox));
  const indent = (text: string) => `  ${text.split('\n').join('\n  ')}`;
  switch (out.section) {
    case 'failures':
      lines.push(`failures (${out.total}):`);
      for (const f of out.failures ?? [])
        lines.push(
          `FAIL ${f.name}${f.file === undefined ? '' : ` (${f.file}${f.line === undefined ? '' : `:${f.line}`})`}`,
          indent(f.message),
        );
      break;
    case 'errors':
      lines.push(`errors (${out.total}):`);
      for (const e of out.errors ?? []) lines.push(`ERROR ${e.file ?? ''}`.trimEnd(), indent(e.message));
      break;
    case 'files':
      lines.push(`files (${out.total}):`);
      for (const f of out.files ?? [])
        lines.push(`${f.file}: ${f.passed} passed, ${f.failed} failed, ${f.skipped} skipped of ${f.total}`);
      break;
    case 'stdout':
    case 'stderr':
      lines.push(`${out.section} (${out.total} bytes):`, out.text ?? '');
      break;
  }
  if (out.truncated?.nextCursor !== undefined)
    lines.push(`… more: get_run with the same runId and section, cursor ${out.truncated.nextCursor}`);
  return lines.join('\n');
}
