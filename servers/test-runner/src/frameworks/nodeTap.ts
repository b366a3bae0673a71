import { escapeRegExp, findNodePackage, requireNodePackage } from './common.js';
import { parseTap, tapResults } from './tap.js';
import type { FrameworkAdapter } from './types.js';

/** node-tap (the `tap` package) through its TAP reporter: each file is a subtest, its tests nested in it. */
export const nodeTapAdapter: FrameworkAdapter = {
  name: 'node-tap',
  reporter: 'TAP (--reporter=tap)',
  async planRun(selection, { project, nodePath }) {
    const runner = await requireNodePackage(project, 'tap', 'tap');
    // Coverage is a separate concern: a run below the coverage bar must not read as a test failure.
    const major = Number(runner.version.split('.')[0]);
    const coverage = major >= 18 ? '--disable-coverage' : '--no-coverage';
    const args = [...(project.launcher?.slice(1) ?? []), runner.bin, '--reporter=tap', coverage];
    const pattern =
      selection.exactNames === undefined
        ? selection.testNamePattern
        : `^(?:${selection.exactNames.map((n) => escapeRegExp(n.name.split(' > ').at(-1) ?? n.name)).join('|')})$`;
    if (pattern !== undefined) args.push(`--grep=${pattern}`);
    if (selection.files.length > 0) args.push('--', ...selection.files);
    return { command: project.launcher?.[0] ?? nodePath, args, env: {}, envAllowlist: [] };
  },
  async parseRun(process, { project }) {
    return tapResults(parseTap(process.stdout), {
      projectDir: project.dir,
      exitCode: process.exitCode,
      stderr: process.stderr,
    });
  },
  async version({ project }) {
    return (await findNodePackage(project.dir, 'tap', 'tap'))?.version;
  },
};
