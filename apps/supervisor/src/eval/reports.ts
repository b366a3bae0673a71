import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { KeelError } from '@keel/kit/core';
import { formatIssues } from '../config/load.js';
import { evalReportSchema, type EvalReport } from './report.js';

/**
 * Where `keel eval` keeps its reports when it runs beside a keel config: one directory per eval
 * under the state dir, each with its report.json, report.html, runs and their own task store. The
 * console lists what is here.
 */
export const evalsDir = (stateDir: string) => path.join(stateDir, 'evals');

/** An eval's directory name: what the console's addresses carry. */
export const evalIdPattern = /^[\w.-]+$/;

/** A new eval's directory name: the suite and the UTC time it started (`cart-fix-20261105-142233`). */
export function newEvalId(suite: string, now: Date): string {
  return `${suite}-${now.toISOString().slice(0, 19).replaceAll(/[-:]/g, '').replace('T', '-')}`;
}

export type EvalReportEntry =
  | {
      id: string;
      writtenAt: string;
      suite: string;
      seed: number;
      repeat: number;
      runs: number;
      configurations: Array<{ configuration: string; runs: number; passRate: number }>;
    }
  | { id: string; writtenAt: string; error: { code: string; message: string; hint: string } };

/** One eval's report, checked against the report's schema; a KeelError says what is wrong and what to do. */
export function readEvalReport(stateDir: string, id: string): EvalReport {
  if (!evalIdPattern.test(id) || id === '.' || id === '..')
    throw new KeelError('INVALID_ARGUMENT', `'${id}' is not an eval's name`, {
      hint: "an eval is named by its directory under the state dir's evals/ (letters, digits, . _ -)",
    });
  const file = path.join(evalsDir(stateDir), id, 'report.json');
  if (!existsSync(file))
    throw new KeelError('NOT_FOUND', `no eval '${id}'`, {
      hint: `keel eval SUITE, run beside this config, writes its report under ${evalsDir(stateDir)}`,
    });
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new KeelError('INVALID_ARGUMENT', `${id}/report.json is not JSON: ${(error as Error).message}`, {
      hint: 'keel eval writes it whole at the end; run the eval again, or delete the directory',
    });
  }
  const parsed = evalReportSchema.safeParse(value);
  if (!parsed.success)
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${id}/report.json is not an eval report: ${formatIssues(parsed.error.issues).join('; ')}`,
      {
        hint: 'it was not written by this version of keel eval; run the eval again, or delete the directory',
      },
    );
  return parsed.data;
}

/** Every eval under the state dir, newest first; one that cannot be read is listed with why. */
export function listEvalReports(stateDir: string): EvalReportEntry[] {
  const dir = evalsDir(stateDir);
  if (!existsSync(dir)) return [];
  const entries = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && evalIdPattern.test(d.name))
    .flatMap((d) => {
      const file = path.join(dir, d.name, 'report.json');
      // An eval still running has no report yet: it is listed once it has one.
      return existsSync(file) ? [{ id: d.name, writtenAt: statSync(file).mtime.toISOString() }] : [];
    });
  return entries
    .sort((a, b) => b.writtenAt.localeCompare(a.writtenAt) || a.id.localeCompare(b.id))
    .map(({ id, writtenAt }): EvalReportEntry => {
      try {
        const report = readEvalReport(stateDir, id);
        return {
          id,
          writtenAt,
          suite: report.suite,
          seed: report.seed,
          repeat: report.repeat,
          runs: report.runs.length,
          configurations: report.configurations.map((c) => ({
            configuration: c.configuration,
            runs: c.runs,
            passRate: c.passRate,
          })),
        };
      } catch (error) {
        if (!(error instanceof KeelError)) throw error;
        return { id, writtenAt, error: { code: error.code, message: error.message, hint: error.hint ?? '' } };
      }
    });
}
