import type { CommandSpec } from './command.js';

/** The frameworks this server knows how to run (`command`: a test command run as it is). */
export const frameworkNames = [
  'vitest',
  'jest',
  'node-test',
  'mocha',
  'tape',
  'node-tap',
  'pytest',
  'go',
  'cargo',
  'command',
] as const;
export type FrameworkName = (typeof frameworkNames)[number];

/** A test project: one framework in one directory. */
export interface Project {
  /** `<dir relative to the first root>:<framework>`, e.g. `packages/api:vitest`. */
  id: string;
  framework: FrameworkName;
  /** Real path of the project directory. */
  dir: string;
  /** The directory as a person reads it (relative to the root). */
  displayDir: string;
  /** Why it was detected: the file that gave it away. */
  detectedBy: string;
  /** A launcher from the human-written config file, replacing the template's program and leading arguments. */
  launcher?: readonly string[];
  /** For framework `command`: what runs and how its output is read. */
  command?: CommandSpec;
}

/** What to run: files (real paths inside the project) and a name filter in the framework's own syntax. */
export interface Selection {
  files: readonly string[];
  testNamePattern?: string;
  /** Exact test names (from a stored run), which each adapter turns into its own exact filter. */
  exactNames?: readonly ExactName[];
}

export interface ExactName {
  name: string;
  file?: string;
  /** Title path without the file, when the framework has one (describe blocks). */
  titlePath?: readonly string[];
}

export type TestStatus = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  name: string;
  /** Real path. */
  file?: string;
  line?: number;
  status: TestStatus;
  durationMs?: number;
  failure?: {
    message: string;
    expected?: string;
    actual?: string;
    stack?: string;
    /** Where the assertion failed (real path + line), when the stack says. */
    file?: string;
    line?: number;
  };
  /** Extra identity the adapter needs for an exact re-run (e.g. a pytest node id). */
  selector?: string;
}

export interface LoadError {
  file?: string;
  message: string;
  stack?: string;
}

/** What an adapter made of one run. `reportFound: false` means the runner never wrote a report. */
export interface ParsedRun {
  reportFound: boolean;
  tests: TestResult[];
  loadErrors: LoadError[];
  /** The runner said there was nothing to run (distinct from a crash). */
  noTestsFound?: boolean;
}

export interface CommandPlan {
  command: string;
  args: string[];
  /** Extra environment set on top of the allowlist. */
  env: Record<string, string>;
  /** Extra variable names the framework needs from the server's environment. */
  envAllowlist: readonly string[];
}

export interface ListedTest {
  name: string;
  file?: string;
  line?: number;
}

export interface RawProcess {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface PlanContext {
  project: Project;
  /** A fresh private directory for report files. */
  scratchDir: string;
  /** The server's node (for JS frameworks and their reporters). */
  nodePath: string;
}

/** One framework: how to run it, how to read what it reports, and how to list its tests. */
export interface FrameworkAdapter {
  name: FrameworkName;
  /** Which reporter or output format is read (for docs and detect_projects). */
  reporter: string;
  planRun(selection: Selection, context: PlanContext): Promise<CommandPlan>;
  /** Called right before a run (not for detect_projects' preview): clears what a stale run left. */
  beforeRun?(context: PlanContext): Promise<void>;
  parseRun(process: RawProcess, context: PlanContext): Promise<ParsedRun>;
  planList?(context: PlanContext): Promise<CommandPlan>;
  parseList?(
    process: RawProcess,
    context: PlanContext,
  ): Promise<{ tests: ListedTest[]; errors: LoadError[] }>;
  version(context: PlanContext, run: ProbeRunner): Promise<string | undefined>;
}

/** Runs a short probe command (e.g. `--version`) and gives back its output. */
export type ProbeRunner = (command: string, args: readonly string[], cwd: string) => Promise<RawProcess>;
