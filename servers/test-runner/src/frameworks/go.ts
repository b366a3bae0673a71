import path from 'node:path';
import { KeelError } from '@keel/kit';
import { clip, readText } from './common.js';
import type { FrameworkAdapter, LoadError, ParsedRun, TestResult } from './types.js';

const envAllowlist = ['GOPATH', 'GOROOT', 'GOCACHE', 'GOMODCACHE', 'GOPROXY', 'GOTOOLCHAIN'] as const;

interface GoEvent {
  Action: string;
  Package?: string;
  Test?: string;
  Elapsed?: number;
  Output?: string;
  ImportPath?: string;
  FailedBuild?: string;
}

/** `go test -json`: the test2json event stream. */
export const goAdapter: FrameworkAdapter = {
  name: 'go',
  reporter: 'go test -json (test2json events)',
  async planRun(selection, { project }) {
    const args = [...(project.launcher?.slice(1) ?? []), 'test', '-json'];
    if (selection.exactNames !== undefined) {
      const names = selection.exactNames.map((n) => `^${n.name.split('/').map(escapeGo).join('$/^')}$`);
      args.push(`-run=${names.join('|')}`);
    } else if (selection.testNamePattern !== undefined) {
      args.push(`-run=${selection.testNamePattern}`);
    }
    const packages = new Set<string>();
    for (const file of selection.files) packages.add(packageOf(file, project.dir));
    args.push(...(packages.size === 0 ? ['./...'] : [...packages]));
    return { command: project.launcher?.[0] ?? 'go', args, env: { GOFLAGS: '' }, envAllowlist };
  },
  async parseRun(process, { project }) {
    const goMod = (await readText(path.join(project.dir, 'go.mod'))) ?? '';
    const modulePath = /^module\s+(\S+)/m.exec(goMod)?.[1] ?? '';
    return parseGoTestJson(process.stdout, process.stderr, project.dir, modulePath);
  },
  async planList({ project }) {
    return {
      command: project.launcher?.[0] ?? 'go',
      args: [...(project.launcher?.slice(1) ?? []), 'test', '-list=.', './...'],
      env: {},
      envAllowlist,
    };
  },
  async parseList(process) {
    const tests = [];
    for (const line of process.stdout.split('\n')) {
      if (/^(Test|Example|Benchmark|Fuzz)\w*$/.test(line.trim())) tests.push({ name: line.trim() });
    }
    return { tests, errors: [] };
  },
  async version(context, run) {
    const out = await run(context.project.launcher?.[0] ?? 'go', ['version'], context.project.dir);
    return /go version go([\w.]+)/.exec(out.stdout)?.[1];
  },
};

function escapeGo(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function packageOf(file: string, projectDir: string): string {
  if (!file.endsWith('.go')) {
    throw new KeelError('INVALID_ARGUMENT', `'${path.relative(projectDir, file)}' is not a Go file`, {
      hint: 'Pass *_test.go files; their packages are run.',
    });
  }
  const dir = path.relative(projectDir, path.dirname(file));
  return dir === '' ? '.' : `./${dir}`;
}

/**
 * Folds test2json events into results: `pass`/`fail`/`skip` per test with its `output` lines; a
 * package that fails without any failed test (build failure, panic in init) is a load error.
 */
export function parseGoTestJson(
  stdout: string,
  stderr: string,
  projectDir: string,
  modulePath: string,
): ParsedRun {
  const output = new Map<string, string>();
  const tests: TestResult[] = [];
  const loadErrors: LoadError[] = [];
  const failedPackages = new Set<string>();
  const packagesWithFailedTests = new Set<string>();
  const failedBuilds = new Map<string, string>();
  const buildOutput = new Map<string, string>();
  let events = 0;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let event: GoEvent;
    try {
      event = JSON.parse(line) as GoEvent;
    } catch {
      continue;
    }
    events++;
    if (event.Action === 'build-output' && event.ImportPath !== undefined) {
      buildOutput.set(event.ImportPath, (buildOutput.get(event.ImportPath) ?? '') + (event.Output ?? ''));
      continue;
    }
    const pkg = event.Package ?? '';
    const key = `${pkg}\0${event.Test ?? ''}`;
    if (event.Action === 'output') {
      output.set(key, (output.get(key) ?? '') + (event.Output ?? ''));
      continue;
    }
    if (event.Test === undefined) {
      if (event.Action === 'fail') failedPackages.add(pkg);
      if (event.FailedBuild !== undefined) failedBuilds.set(pkg, event.FailedBuild);
      continue;
    }
    if (event.Action !== 'pass' && event.Action !== 'fail' && event.Action !== 'skip') continue;
    const result: TestResult = {
      name: event.Test,
      status: event.Action === 'pass' ? 'passed' : event.Action === 'fail' ? 'failed' : 'skipped',
    };
    if (event.Elapsed !== undefined) result.durationMs = Math.round(event.Elapsed * 1000);
    if (result.status === 'failed') {
      packagesWithFailedTests.add(pkg);
      const text = output.get(key) ?? '';
      const lines = text.split('\n').filter((l) => !/^\s*(=== RUN|--- FAIL|=== PAUSE|=== CONT)/.test(l));
      const where = /^\s+([\w./-]+\.go):(\d+): ([\s\S]*)$/m.exec(lines.join('\n'));
      result.failure = {
        message: clip((where?.[3] ?? lines.join('\n')).trim() || 'test failed'),
        stack: clip(text.trim()),
      };
      // The two idioms of Go test messages: "got X, want Y" and "f(x) = X, want Y".
      const got =
        /\bgot:?\s+(.+?),?\s+want:?\s+(.+)$/m.exec(text) ?? /\s=\s(.+?),\s+want:?\s+(.+)$/m.exec(text);
      if (got !== null) {
        result.failure.actual = clip(got[1]!.trim());
        result.failure.expected = clip(got[2]!.trim());
      }
      if (where !== null) {
        const dir = pkgDir(pkg, projectDir, modulePath);
        result.failure.file = path.resolve(dir, where[1]!);
        result.failure.line = Number(where[2]);
        result.file = result.failure.file;
      }
    }
    // Subtests ("TestX/case") are reported as well as their parent; keep them all, like go does.
    tests.push(result);
  }
  for (const pkg of failedPackages) {
    const pkgOutput = output.get(`${pkg}\0`) ?? '';
    const failedBuild = failedBuilds.get(pkg);
    const build = failedBuild === undefined ? '' : (buildOutput.get(failedBuild) ?? '');
    if (
      !packagesWithFailedTests.has(pkg) ||
      build !== '' ||
      /\[(build|setup) failed\]/.test(pkgOutput) ||
      /^panic:/m.test(pkgOutput)
    ) {
      loadErrors.push({ message: clip(`${pkg}: ${(build || pkgOutput).trim() || 'package failed'}`) });
    }
  }
  if (events === 0 && stderr.trim() !== '') loadErrors.push({ message: clip(stderr.trim()) });
  return {
    reportFound: events > 0,
    tests,
    loadErrors,
    noTestsFound: events > 0 && tests.length === 0 && loadErrors.length === 0,
  };
}

/** A package's directory: its import path below the module path, under the module root. */
function pkgDir(pkg: string, projectDir: string, modulePath: string): string {
  if (modulePath !== '' && (pkg === modulePath || pkg.startsWith(`${modulePath}/`))) {
    return path.join(projectDir, pkg.slice(modulePath.length));
  }
  return projectDir;
}
