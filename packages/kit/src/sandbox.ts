import type { Dirent } from 'node:fs';
import { access, constants, lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fail, KeelError, ok, type Outcome } from './errors.js';
import { runProcess } from './process.js';

/** How a server runs code it did not write: `auto` uses bubblewrap when it works, `bwrap` insists, `none` never. */
export const sandboxModes = ['auto', 'bwrap', 'none'] as const;
export type SandboxMode = (typeof sandboxModes)[number];

/** What a run was confined by: `none` carries why (turned off, bwrap missing or refused by the kernel). */
export interface SandboxStatus {
  kind: 'bwrap' | 'none';
  reason?: string;
}

export interface SandboxOptions {
  mode: SandboxMode;
  /** The bubblewrap program (default: `bwrap` on the PATH of `env`). */
  bwrapPath?: string;
  /**
   * In `auto` mode, refuse to run when bubblewrap cannot be had instead of running unsandboxed (the
   * bin sets it under `CI=true` unless `--allow-unsandboxed`).
   */
  requireSandbox?: boolean;
  /** Directories every run may read besides the system's (toolchains installed elsewhere). */
  readOnly?: readonly string[];
  /** Paths never visible inside, even when they lie in a root or an exposed directory (state dir, keys). */
  hidden?: readonly string[];
  /** Where bwrap, HOME and the toolchain homes are looked up (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
}

export interface SandboxRun {
  /** The program, by name (looked up on `pathVariable`) or absolute. */
  command: string;
  args: readonly string[];
  cwd: string;
  /** The only host directories a run may change: the call's roots and its private scratch dirs. */
  writable: readonly string[];
  /** Extra directories this run may read. */
  readOnly?: readonly string[];
  /** The PATH the program will see; its directories are readable inside. */
  pathVariable?: string;
}

/** The command to spawn instead, the variables to set on top of the child's environment, and the status. */
export interface WrappedRun {
  command: string;
  args: string[];
  env: Record<string, string>;
  sandbox: SandboxStatus;
}

export interface Sandbox {
  /** Whether runs are confined, or why not; an error when they must be and cannot. Probed once. */
  status(): Promise<Outcome<SandboxStatus>>;
  /** What to spawn to run `run` inside the sandbox (or as it is, when the status is `none`). */
  wrap(run: SandboxRun): Promise<Outcome<WrappedRun>>;
}

/** Read-only system directories: programs, libraries and configuration, never a user's files. */
const systemDirs = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc'] as const;
/** HOME inside the sandbox: empty and private to the run, so tools that write caches there still work. */
export const sandboxHome = '/tmp/.sandbox-home';
const installHint = 'Install bubblewrap (apt-get install bubblewrap)';

/**
 * Runs other people's code under bubblewrap: a private mount namespace in which only the system
 * directories, the toolchains on PATH and the given read-only paths can be read, only the writable
 * paths (the roots) can be changed, `/tmp` and HOME are empty and private, the network is a fresh
 * namespace with nothing listening, the process tree is its own PID namespace that dies with the
 * parent, and no capability is kept. Whatever the host keeps elsewhere (Keel's state dir and keys,
 * the user's HOME, other projects) is simply not there.
 */
export function createSandbox(options: SandboxOptions): Sandbox {
  const env = options.env ?? process.env;
  const bwrap = options.bwrapPath ?? 'bwrap';
  let probed: Promise<Outcome<SandboxStatus>> | undefined;
  let masked: Promise<Masked[]> | undefined;

  const status = () => (probed ??= probe());

  async function probe(): Promise<Outcome<SandboxStatus>> {
    if (options.mode === 'none')
      return ok({ kind: 'none', reason: 'the sandbox is turned off (--sandbox none)' });
    const problem = await bwrapProblem(bwrap, env);
    if (problem === undefined) return ok({ kind: 'bwrap' });
    if (options.mode === 'bwrap') {
      return fail('UNAVAILABLE', `--sandbox bwrap was asked for, but ${problem}`, {
        hint: `${installHint}, or start the server with --sandbox none to run code unconfined.`,
        retryable: false,
      });
    }
    if (options.requireSandbox === true) {
      return fail('UNAVAILABLE', `refusing to run code outside a sandbox under CI: ${problem}`, {
        hint: `${installHint}, or pass --allow-unsandboxed to run it unconfined on purpose.`,
        retryable: false,
      });
    }
    return ok({ kind: 'none', reason: problem });
  }

  return {
    status,
    async wrap(run) {
      const current = await status();
      if (!current.ok) return current;
      if (current.value.kind === 'none')
        return ok({ command: run.command, args: [...run.args], env: {}, sandbox: current.value });
      masked ??= unreadableEntries('/etc');
      const pathDirs = (run.pathVariable ?? '').split(path.delimiter).filter((dir) => path.isAbsolute(dir));
      const program = await locate(run.command, run.cwd, pathDirs);
      // Inside, a missing program is only bwrap's exit 1; say it as an unsandboxed run would.
      if (program === undefined) {
        return fail('UNAVAILABLE', `program '${run.command}' was not found`, {
          hint: `Install ${run.command} or put it on the server's PATH.`,
          retryable: false,
        });
      }
      const toolchain = await toolchainPaths(program, pathDirs, env);
      const writable = unique(run.writable);
      const readOnly = unique([...(options.readOnly ?? []), ...(run.readOnly ?? []), ...toolchain.readOnly]);
      const args = bwrapArgs({
        writable,
        readOnly,
        masked: [
          ...(await masked),
          ...(await hiddenInside(options.hidden ?? [], [...writable, ...readOnly])),
        ],
        cwd: run.cwd,
        home: env['HOME'],
      });
      return ok({
        command: bwrap,
        args: [...args, '--', run.command, ...run.args],
        env: { HOME: sandboxHome, TMPDIR: '/tmp', ...toolchain.env },
        sandbox: current.value,
      });
    },
  };
}

/** Why bubblewrap cannot confine a run here, or undefined when a trial run works. */
async function bwrapProblem(bwrap: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    const trial = await runProcess({
      command: bwrap,
      args: [...isolation, '--ro-bind', '/', '/', '--', 'true'],
      cwd: '/',
      baseEnv: env,
      envAllowlist: ['PATH'],
      timeoutMs: 10_000,
      maxOutputBytes: 4096,
    });
    if (trial.exitCode === 0) return undefined;
    const said = trial.stderr.text.trim().split('\n')[0] ?? '';
    return `bwrap cannot create a sandbox here (exit ${trial.exitCode ?? trial.signal}${said === '' ? '' : `: ${said}`})`;
  } catch (error) {
    if (error instanceof KeelError && error.code === 'UNAVAILABLE')
      return `bwrap is not installed ('${bwrap}' was not found)`;
    throw error;
  }
}

/**
 * Namespaces and privileges: a user namespace (so even root inside cannot remount the read-only
 * binds or reach devices), no capabilities, its own PIDs (killing bwrap ends every process inside),
 * network, IPC and hostname.
 */
const isolation = [
  '--unshare-user',
  '--unshare-pid',
  '--unshare-net',
  '--unshare-ipc',
  '--unshare-uts',
  '--unshare-cgroup-try',
  '--die-with-parent',
  '--cap-drop',
  'ALL',
] as const;

/**
 * A path hidden inside: a directory as an empty tmpfs, a file as a bind of /dev/null, which cannot be
 * opened there (mounts in a user namespace are nodev), so reading it is refused.
 */
interface Masked {
  path: string;
  directory: boolean;
}

interface Layout {
  writable: readonly string[];
  readOnly: readonly string[];
  /** Masked after everything is mounted, so they stay hidden inside roots and exposed directories. */
  masked: readonly Masked[];
  cwd: string;
  home: string | undefined;
}

/** The bwrap arguments; later mounts sit on top of earlier ones, so the order is the policy. */
export function bwrapArgs(layout: Layout): string[] {
  const args: string[] = [...isolation, '--tmpfs', '/tmp', '--dir', sandboxHome];
  for (const dir of systemDirs) args.push('--ro-bind-try', dir, dir);
  args.push('--dev', '/dev', '--proc', '/proc');
  const home = layout.home === undefined || layout.home === '' ? undefined : path.resolve(layout.home);
  const exposed = unique(layout.readOnly).filter(
    (dir) =>
      dir !== '/' &&
      !systemDirs.some((system) => within(system, dir)) &&
      // Never a directory that holds HOME: that would show the user's files wholesale.
      !(home !== undefined && within(dir, home)),
  );
  for (const dir of exposed) args.push('--ro-bind-try', dir, dir);
  for (const dir of unique(layout.writable)) args.push('--bind', dir, dir);
  for (const entry of layout.masked) {
    if (entry.directory) args.push('--tmpfs', entry.path);
    else args.push('--ro-bind', '/dev/null', entry.path);
  }
  args.push('--chdir', layout.cwd);
  return args;
}

/**
 * What the program needs to start: the directories on its PATH, the install prefix it links into
 * (nvm's npm, a virtualenv's python), the root of a version manager whose shims are on PATH
 * (pyenv, rbenv, asdf), and rustup's toolchains, which its proxies find through HOME otherwise.
 */
async function toolchainPaths(
  program: string,
  pathDirs: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ readOnly: string[]; env: Record<string, string> }> {
  const readOnly: string[] = [];
  const extraEnv: Record<string, string> = {};
  for (const dir of pathDirs) {
    readOnly.push(dir);
    if (path.basename(dir) === 'shims') readOnly.push(path.dirname(dir));
  }
  readOnly.push(path.dirname(program));
  const real = await realpath(program).catch(() => program);
  if (path.dirname(real) !== path.dirname(program)) readOnly.push(path.dirname(path.dirname(real)));
  const home = env['HOME'];
  const rustup = env['RUSTUP_HOME'] ?? (home === undefined ? undefined : path.join(home, '.rustup'));
  if (rustup !== undefined && (await isDirectory(rustup))) {
    readOnly.push(rustup);
    extraEnv['RUSTUP_HOME'] = rustup;
  }
  return { readOnly, env: extraEnv };
}

/** The file a program name runs, as execvp would find it; undefined when there is none. */
async function locate(
  command: string,
  cwd: string,
  pathDirs: readonly string[],
): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [path.resolve(cwd, command)]
    : pathDirs.map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/**
 * Entries under `dir` that other users may not read (shadow passwords, private TLS keys): bwrap runs
 * as the same user as the server, so these are masked rather than left to file permissions.
 */
async function unreadableEntries(dir: string, depth = 0): Promise<Masked[]> {
  const found: Masked[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const info = await lstat(full).catch(() => undefined);
    if (info === undefined) continue;
    const readable = (info.mode & 0o004) !== 0 && (!entry.isDirectory() || (info.mode & 0o001) !== 0);
    if (!readable) found.push({ path: full, directory: entry.isDirectory() });
    else if (entry.isDirectory() && depth < 8) found.push(...(await unreadableEntries(full, depth + 1)));
  }
  return found;
}

/**
 * The hidden paths that exist and lie in something mounted: only those need masking, and masking a
 * missing one would make bwrap create it in the host's directory.
 */
async function hiddenInside(hidden: readonly string[], mounted: readonly string[]): Promise<Masked[]> {
  const found: Masked[] = [];
  for (const given of unique(hidden)) {
    // Roots are real paths; a state dir named through a link must be compared as its target.
    const entry = await realpath(given).catch(() => undefined);
    if (entry === undefined || !mounted.some((dir) => within(dir, entry))) continue;
    const info = await stat(entry).catch(() => undefined);
    if (info === undefined) continue;
    found.push({ path: entry, directory: info.isDirectory() });
  }
  return found;
}

async function isDirectory(dir: string): Promise<boolean> {
  return (await stat(dir).catch(() => undefined))?.isDirectory() === true;
}

function within(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
}

function unique(paths: readonly string[]): string[] {
  return [...new Set(paths.map((p) => path.resolve(p)))];
}
