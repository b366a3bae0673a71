import { readdir, readlink, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fail, type Outcome, type ToolContext } from '@keel/kit';
import type { ResolvedGitOptions } from './options.js';

export interface GitCall {
  cwd: string;
  args: readonly string[];
  /** Extra `-c name=value` pairs (the repository's drivers, neutralised). */
  overrides?: readonly string[];
  stdin?: string;
  maxOutputBytes?: number;
  env?: Record<string, string>;
}

export interface GitResult {
  exitCode: number | null;
  /** stdout as text, decoded on first read. */
  readonly stdout: string;
  /** stdout as git wrote it, for callers that page or scan large output without decoding all of it. */
  readonly stdoutBytes: Buffer;
  stderr: string;
  /** The output was larger than the cap and its middle was dropped. */
  cut: boolean;
}

const defaultMaxOutput = 64 * 1024 * 1024;

/**
 * The `-c` overrides every git call carries. Command-line config outranks the repository's own, so
 * whatever `.git/config` (or a file it includes) says, nothing in it can start a program: no
 * fsmonitor, hooks, pager, external diff, credential helper, askpass, proxy command, pack hook or
 * alternate-refs command, and only the allowed transports (never `ext::`).
 */
export function hardeningConfig(options: ResolvedGitOptions): string[] {
  const pairs = [
    'core.fsmonitor=false',
    'core.pager=cat',
    'core.askPass=',
    'core.gitProxy=',
    'core.sshCommand=ssh -oBatchMode=yes',
    'core.alternateRefsCommand=',
    'core.quotePath=false',
    'credential.helper=',
    'diff.external=',
    'uploadpack.packObjectsHook=',
    'blame.ignoreRevsFile=',
    'log.showSignature=false',
    'commit.gpgSign=false',
    'tag.gpgSign=false',
    'push.gpgSign=false',
    'gc.auto=0',
    'maintenance.auto=false',
    'submodule.recurse=false',
    'fetch.recurseSubmodules=false',
    'push.recurseSubmodules=no',
    'color.ui=false',
    'advice.detachedHead=false',
    'safe.bareRepository=explicit',
    'protocol.allow=never',
    'protocol.ext.allow=never',
    ...options.allowProtocols.map((protocol) => `protocol.${protocol}.allow=always`),
  ];
  if (!options.enableHooks) pairs.push('core.hooksPath=/dev/null');
  if (!options.useGlobalConfig) pairs.push('core.attributesFile=/dev/null');
  return pairs;
}

/** Options for every command that talks to a remote: the standard programs, whatever a remote's config names. */
export const transportPrograms = {
  fetch: '--upload-pack=git-upload-pack',
  push: '--receive-pack=git-receive-pack',
} as const;

/** The environment git runs with: no system or global config, no prompts, no editor, literal pathspecs. */
export function gitEnvironment(
  options: ResolvedGitOptions,
  roots: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    GIT_EDITOR: 'false',
    GIT_SEQUENCE_EDITOR: 'false',
    GIT_LITERAL_PATHSPECS: '1',
    GIT_PROTOCOL_FROM_USER: '0',
    GIT_SSH_VARIANT: 'ssh',
    GIT_OPTIONAL_LOCKS: '0',
    LC_ALL: 'C',
    // Discovery stops at the roots, so a directory inside a root never picks up a repository above it.
    GIT_CEILING_DIRECTORIES: roots.map((root) => path.dirname(root)).join(':'),
  };
  if (!options.useGlobalConfig) env['GIT_CONFIG_GLOBAL'] = '/dev/null';
  if (options.identity !== undefined) {
    env['GIT_AUTHOR_NAME'] = options.identity.name;
    env['GIT_AUTHOR_EMAIL'] = options.identity.email;
    env['GIT_COMMITTER_NAME'] = options.identity.name;
    env['GIT_COMMITTER_EMAIL'] = options.identity.email;
  }
  return env;
}

// What every call of one server shares, built once: options never change after start, and a jail's
// roots array is fixed (client roots make a new jail, hence a new entry).
const argsCache = new WeakMap<ResolvedGitOptions, readonly string[]>();
const envCache = new WeakMap<ResolvedGitOptions, WeakMap<readonly string[], Record<string, string>>>();

function hardeningArgs(options: ResolvedGitOptions): readonly string[] {
  let args = argsCache.get(options);
  if (args === undefined) {
    args = ['--no-pager', ...hardeningConfig(options).flatMap((pair) => ['-c', pair])];
    argsCache.set(options, args);
  }
  return args;
}

function baseEnvironment(options: ResolvedGitOptions, roots: readonly string[]): Record<string, string> {
  let byRoots = envCache.get(options);
  if (byRoots === undefined) envCache.set(options, (byRoots = new WeakMap()));
  let env = byRoots.get(roots);
  if (env === undefined) byRoots.set(roots, (env = Object.freeze(gitEnvironment(options, roots))));
  return env;
}

/** What running git needs of a call: its process runner and jail (a handler's context or the prepare step's call). */
export type GitRunner = Pick<ToolContext, 'run' | 'jail'>;

/** Runs git with the hardening config and environment, through the kit's process runner (no shell). */
export async function runGit(ctx: GitRunner, options: ResolvedGitOptions, call: GitCall): Promise<GitResult> {
  const result = await runGitOnce(ctx, options, call);
  // A lock file left by a git that was killed (a crashed server or supervisor) blocks every later
  // write until someone removes it. When nothing holds it open, it is stale: remove it and run again
  // (git takes its locks before it changes anything, so the failed run did nothing).
  if (result.exitCode !== 0) {
    const stale = await staleLockIn(result.stderr, ctx.jail.roots);
    if (stale !== undefined) {
      await rm(stale, { force: true });
      return runGitOnce(ctx, options, call);
    }
  }
  return result;
}

const lockMessage = /Unable to create '([^']+\.lock)': File exists/;
/** Lock files younger than this may be between git's close and rename of a live lock: never touched. */
const staleAfterMs = 2_000;

/**
 * The lock file git's message names, if it is stale: inside the roots, older than a moment, and held
 * open by no process this user can see (git keeps a lock open from creating it until it renames it).
 */
async function staleLockIn(stderr: string, roots: readonly string[]): Promise<string | undefined> {
  const named = lockMessage.exec(stderr)?.[1];
  if (named === undefined || !roots.some((root) => named.startsWith(`${root}${path.sep}`))) return undefined;
  let age: number;
  try {
    age = Date.now() - (await stat(named)).mtimeMs;
  } catch {
    return undefined;
  }
  if (age < staleAfterMs || (await heldOpen(named))) return undefined;
  return named;
}

/** Whether any process has `file` open (Linux /proc; elsewhere: assume it does, and touch nothing). */
async function heldOpen(file: string): Promise<boolean> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return true;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if ((await readlink(`/proc/${pid}/fd/${fd}`)) === file) return true;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return false;
}

async function runGitOnce(ctx: GitRunner, options: ResolvedGitOptions, call: GitCall): Promise<GitResult> {
  const args = [
    ...hardeningArgs(options),
    ...(call.overrides ?? []).flatMap((pair) => ['-c', pair]),
    ...call.args,
  ];
  const result = await ctx.run({
    command: options.gitBinary,
    args,
    cwd: call.cwd,
    // HOME and the ssh agent socket let ssh find keys; proxies let https through. Nothing else leaks in.
    envAllowlist: [
      'PATH',
      'HOME',
      'TMPDIR',
      'TZ',
      'USER',
      'LOGNAME',
      'SSH_AUTH_SOCK',
      'HTTPS_PROXY',
      'https_proxy',
      'HTTP_PROXY',
      'http_proxy',
      'NO_PROXY',
      'no_proxy',
    ],
    env:
      call.env === undefined
        ? baseEnvironment(options, ctx.jail.roots)
        : { ...baseEnvironment(options, ctx.jail.roots), ...call.env },
    timeoutMs: 600_000,
    timeoutHint: 'Narrow the request.',
    maxOutputBytes: call.maxOutputBytes ?? defaultMaxOutput,
    ...(call.stdin === undefined ? {} : { stdin: call.stdin }),
  });
  const stdout = result.stdout;
  return {
    exitCode: result.exitCode,
    get stdout() {
      return stdout.text;
    },
    stdoutBytes: stdout.bytes,
    stderr: result.stderr.text,
    cut: stdout.droppedBytes > 0,
  };
}

/** The first lines of git's complaint, without its `hint:` chatter. */
export function gitMessage(result: GitResult): string {
  const lines = `${result.stderr}\n${result.stdout}`
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('hint:'));
  const text = lines.slice(0, 6).join(' | ');
  return text.length > 800 ? `${text.slice(0, 800)}…` : text;
}

/** A failed git command as a tool error, classified by what git said. */
export function gitFailure(
  action: string,
  result: GitResult,
  hint?: string,
): { ok: false; error: ReturnType<typeof fail>['error'] } {
  const message = `${action} failed: ${gitMessage(result) || `git exited with ${String(result.exitCode)}`}`;
  const text = result.stderr.toLowerCase();
  if (/index\.lock|\.lock': file exists|cannot lock ref/.test(text)) {
    return fail('UNAVAILABLE', message, {
      hint: 'Another git process holds a lock on this repository; retry shortly. (A lock left by a killed git is removed by itself once nothing holds it open.)',
      retryable: true,
    });
  }
  const code = /already exists/.test(text)
    ? 'ALREADY_EXISTS'
    : /conflict|would be overwritten|not possible to fast-forward|non-fast-forward|rejected|diverg/.test(text)
      ? 'CONFLICT'
      : /did not match any|not a valid|unknown revision|does not exist|no such|not found|invalid reference|bad revision/.test(
            text,
          )
        ? 'NOT_FOUND'
        : 'PRECONDITION_FAILED';
  return fail(code, message, {
    hint: hint ?? "Read git's message above; check the repository state with git_status.",
  });
}

export type GitOutcome<TValue> = Outcome<TValue>;
