import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { KeelError } from '@keel/kit/core';
import type { RegisterCommand } from './context.js';

const count = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number`);
  return n;
};

export const registerEval: RegisterCommand = (program, ctx) => {
  /** Beside a keel config, under its state dir (where `keel console` lists evals); else a new temporary directory. */
  const defaultOut = async (configFile: string | undefined, suite: string) => {
    let file: string;
    try {
      file = ctx.findConfig(configFile);
    } catch (error) {
      if (configFile === undefined && error instanceof KeelError && error.code === 'NOT_FOUND')
        return mkdtempSync(path.join(os.tmpdir(), `keel-eval-${suite}-`));
      throw error;
    }
    const [{ loadConfig }, { evalsDir, newEvalId }] = await Promise.all([
      import('../../config/load.js'),
      import('../../eval/reports.js'),
    ]);
    return path.join(evalsDir(loadConfig(file).stateDir), newEvalId(suite, new Date(ctx.io.clock.now())));
  };
  program
    .command('eval')
    .description(
      'run an eval suite: tasks × configurations, each repeated on a fresh copy of its repository; report pass rate, latency, steps, tokens, cost, approvals asked, review rounds and limit stops',
    )
    .argument('<suite>', 'the suite (YAML or JSON)')
    .addOption(ctx.configOption())
    .option(
      '--out <dir>',
      'where the runs, their task store, report.json and report.html go (default: beside a keel config, <stateDir>/evals/SUITE-TIME, which keel console lists; else a new temporary directory)',
    )
    .option('--seed <n>', "override the suite's seed", count('--seed'))
    .option('--repeat <k>', "override the suite's repetitions", count('--repeat'))
    .option('--json', 'print the report as JSON', false)
    .option('-q, --quiet', 'no line per run', false)
    .action(
      async (
        file: string,
        opts: {
          config?: string;
          out?: string;
          seed?: number;
          repeat?: number;
          json: boolean;
          quiet: boolean;
        },
      ) => {
        // The suite, the engine and the model adapters load only for the command that runs them.
        const [{ loadSuite }, { runEval }, { renderEvalHtml }, { formatEvalReport }] = await Promise.all([
          import('../../eval/suite.js'),
          import('../../eval/runEval.js'),
          import('../../eval/html.js'),
          import('../../eval/report.js'),
        ]);
        const loaded = loadSuite(path.resolve(ctx.io.cwd, file));
        const out =
          opts.out === undefined
            ? await defaultOut(opts.config, loaded.suite.name)
            : path.resolve(ctx.io.cwd, opts.out);
        const report = await runEval({
          loaded,
          out,
          env: ctx.io.env,
          ...(opts.seed === undefined ? {} : { seed: opts.seed }),
          ...(opts.repeat === undefined ? {} : { repeat: opts.repeat }),
          ...(opts.quiet
            ? {}
            : {
                onRun: (run, index, total) =>
                  ctx.io.stderr.write(
                    `[${index}/${total}] ${run.task} × ${run.configuration} #${run.repetition}: ${run.passed ? 'passed' : 'FAILED'} (${run.status}${run.limit ? `, ${run.limit}` : ''})\n`,
                  ),
              }),
        });
        writeFileSync(path.join(out, 'report.html'), renderEvalHtml(report));
        // Whole or not at all: the console lists an eval once its report.json exists.
        writeFileSync(path.join(out, 'report.json.tmp'), `${JSON.stringify(report, null, 2)}\n`);
        renameSync(path.join(out, 'report.json.tmp'), path.join(out, 'report.json'));
        ctx.out(
          opts.json
            ? JSON.stringify(report, null, 2)
            : `${formatEvalReport(report)}\n\nreport: ${path.join(out, 'report.html')} (and report.json); runs and their task store: ${out}`,
        );
      },
    );
};
