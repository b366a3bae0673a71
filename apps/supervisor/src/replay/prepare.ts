import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { KeelError } from '@keel/kit/core';
import type { LoadedConfig } from '../config/load.js';
import type { ServerConfig } from '../config/schema.js';
import type { StartingFiles } from './startingFiles.js';
import type { Substitutions } from './compare.js';

/** The recorded starting state, as runTask wrote it. */
export interface RecordedStart {
  configHash?: string;
  servers?: Record<string, { version: string; toolListHash: string }>;
  git?:
    { head: string | null; branch: string | null; dirty: string[]; untracked: string[] } | { error: string };
  files?: StartingFiles;
}

/** A replay's private world: copies of the roots, fresh state, redirected deploy targets. */
export interface ReplayWorld {
  dir: string;
  workspace: string;
  stateDir: string;
  loaded: LoadedConfig;
  env: NodeJS.ProcessEnv;
  /** What differs from the recording by construction, to map away when comparing. */
  substitutions: { recorded: Substitutions; replayed: Substitutions };
  /** Where the replay could only approximate the recorded starting state. */
  notes: string[];
}

const deployConfigNames = ['keel.deploy.yaml', 'keel.deploy.yml', 'keel.deploy.json'];

const git = (cwd: string, args: string[]) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

const inside = (parent: string, child: string) => {
  const relative = path.relative(parent, child);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
};

const optionValue = (args: readonly string[], name: string): string | undefined => {
  for (const [i, arg] of args.entries()) {
    if (arg === name) return args[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
};

const withOption = (args: readonly string[], name: string, value: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) {
      i++;
      continue;
    }
    if (args[i]!.startsWith(`${name}=`)) continue;
    out.push(args[i]!);
  }
  return [...out, name, value];
};

/**
 * The workspace at the recorded HEAD (a clone, on the recorded branch, with the original's local
 * git config) plus the recorded dirty and untracked files; each remote pointed at an empty bare
 * repository in the replay dir, so a push lands there.
 */
function copyWorkspace(original: string, copy: string, start: RecordedStart, dir: string, notes: string[]) {
  const state = start.git;
  if (state === undefined || 'error' in state || state.head === null) {
    throw new KeelError(
      'PRECONDITION_FAILED',
      'the task recorded no git HEAD: its starting state cannot be rebuilt',
      {
        hint: 'replay needs a workspace that is a git repository with a git server configured',
      },
    );
  }
  git(dir, ['clone', '--quiet', '--no-hardlinks', '--no-checkout', original, copy]);
  copyFileSync(path.join(original, '.git', 'config'), path.join(copy, '.git', 'config'));
  for (const remote of git(copy, ['remote']).split('\n').filter(Boolean)) {
    const bare = path.join(dir, '.replay', 'remotes', `${remote}.git`);
    git(dir, ['init', '--quiet', '--bare', bare]);
    git(copy, ['remote', 'set-url', remote, bare]);
    try {
      git(copy, ['config', '--unset-all', `remote.${remote}.pushurl`]);
    } catch {
      // no push URL of its own: nothing to redirect
    }
  }
  git(
    copy,
    state.branch === null
      ? ['checkout', '--quiet', '--detach', state.head]
      : ['checkout', '--quiet', '-B', state.branch, state.head],
  );
  const recorded = start.files;
  if (recorded !== undefined) {
    for (const file of recorded.files) {
      const target = path.join(copy, file.path);
      if (file.content === null) rmSync(target, { force: true });
      else {
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, Buffer.from(file.content, 'base64'));
      }
    }
    if (recorded.skipped.length > 0)
      notes.push(`not recorded (past the size caps), copied as they are now: ${recorded.skipped.join(', ')}`);
    for (const skipped of recorded.skipped) copyCurrent(original, copy, skipped);
  } else {
    const paths = [...state.dirty, ...state.untracked];
    if (paths.length > 0) {
      notes.push(
        `the recording predates file snapshots: dirty/untracked files copied as they are now: ${paths.join(', ')}`,
      );
      for (const p of paths) copyCurrent(original, copy, p);
    }
  }
}

function copyCurrent(original: string, copy: string, relative: string) {
  const from = path.join(original, relative);
  const to = path.join(copy, relative);
  if (!existsSync(from)) {
    rmSync(to, { recursive: true, force: true });
    return;
  }
  mkdirSync(path.dirname(to), { recursive: true });
  execFileSync('cp', ['-R', from, to]);
}

/**
 * A deploy server's config rewritten so every target lies in the replay dir: where the target's
 * path, resolved from the copied root, already falls inside the replay dir it is kept as written
 * (results that quote it stay identical); otherwise it becomes `.replay/targets/<env>`. A command
 * target cannot be redirected, so a task that used one is refused.
 */
function redirectDeploy(
  name: string,
  server: Extract<ServerConfig, { builtin: string }>,
  ctx: { original: string; copy: string; dir: string },
  subs: { recorded: Array<[string, string]>; replayed: Array<[string, string]> },
): ServerConfig {
  const rootArg = optionValue(server.args, '--root') ?? '.';
  const rootOriginal = path.resolve(ctx.original, rootArg);
  const rootCopy = path.resolve(ctx.copy, rootArg);
  const given = optionValue(server.args, '--config');
  const file =
    given === undefined
      ? deployConfigNames.map((n) => path.join(rootCopy, n)).find((f) => existsSync(f))
      : !path.isAbsolute(given)
        ? // The deploy server reads a relative --config against its --root.
          path.resolve(rootCopy, given)
        : inside(ctx.original, given)
          ? path.join(ctx.copy, path.relative(ctx.original, given))
          : given;
  if (file === undefined || !existsSync(file))
    throw new KeelError(
      'NOT_FOUND',
      `servers.${name}: the deploy config was not found in the replay's copy`,
      {
        hint: 'a replay reads the deploy config from the workspace at the recorded HEAD',
      },
    );
  const config = parseYaml(readFileSync(file, 'utf8')) as {
    environments?: Record<string, { target?: { type?: string; path?: string } }>;
  };
  for (const [env, value] of Object.entries(config.environments ?? {})) {
    const target = value.target ?? {};
    if (target.type !== 'directory' || typeof target.path !== 'string')
      throw new KeelError(
        'PRECONDITION_FAILED',
        `servers.${name}: environment '${env}' deploys through a command target, which a replay cannot redirect`,
        { hint: 'replay tasks whose deploy targets are directories' },
      );
    const originalTarget = path.resolve(rootOriginal, target.path);
    const mirrored = path.resolve(rootCopy, target.path);
    const safe =
      inside(ctx.dir, mirrored) &&
      !inside(ctx.copy, mirrored) &&
      !inside(path.join(ctx.dir, '.replay'), mirrored);
    const redirected = safe ? mirrored : path.join(ctx.dir, '.replay', 'targets', env);
    mkdirSync(redirected, { recursive: true });
    target.path = safe ? target.path : redirected;
    subs.recorded.push([originalTarget, `<target:${env}>`]);
    subs.replayed.push([redirected, `<target:${env}>`]);
  }
  const rewritten = path.join(ctx.dir, '.replay', `${name}.deploy.yaml`);
  writeFileSync(rewritten, stringifyYaml(config));
  // Public keys the server trusts are read where they are: a key file beside the workspace is not copied.
  const args = withOption(server.args, '--config', rewritten).map((arg, i, all) =>
    all[i - 1] === '--approval-key' && !path.isAbsolute(arg) && !existsSync(path.resolve(ctx.copy, arg))
      ? path.resolve(ctx.original, arg)
      : arg,
  );
  return { ...server, args };
}

/**
 * Builds the replay's world in `dir`: the workspace copy (named as the original, so paths relative
 * to it resolve alike), `.replay/state` (a fresh task store and fresh server state: a fresh
 * idempotency namespace), the deploy configs redirected. A server reached over HTTP cannot be
 * copied, so a config with one is refused.
 */
export function prepareReplayWorld(options: {
  loaded: LoadedConfig;
  start: RecordedStart;
  dir: string;
}): ReplayWorld {
  const { loaded, start } = options;
  const dir = path.resolve(options.dir);
  const notes: string[] = [];
  const copy = path.join(dir, path.basename(loaded.workspace));
  const stateDir = path.join(dir, '.replay', 'state');
  mkdirSync(stateDir, { recursive: true });
  copyWorkspace(loaded.workspace, copy, start, dir, notes);
  const subs = {
    recorded: [
      [loaded.workspace, '<workspace>'],
      [loaded.stateDir, '<state>'],
    ] as Array<[string, string]>,
    replayed: [
      [copy, '<workspace>'],
      [stateDir, '<state>'],
    ] as Array<[string, string]>,
  };
  const servers: Record<string, ServerConfig> = {};
  for (const [name, server] of Object.entries(loaded.config.servers)) {
    if ('url' in server)
      throw new KeelError(
        'PRECONDITION_FAILED',
        `servers.${name} is reached over HTTP (${server.url}): a replay cannot copy what it touches`,
        {
          hint: 'replay with a config whose servers are started over stdio',
        },
      );
    if ('builtin' in server && server.builtin === 'deploy')
      servers[name] = redirectDeploy(name, server, { original: loaded.workspace, copy, dir }, subs);
    else {
      servers[name] = server;
      if (!('builtin' in server))
        notes.push(
          `servers.${name} is an external command: it runs in the copy, but what it reaches outside it is not redirected`,
        );
    }
  }
  // Longest first, so a target inside the workspace maps before the workspace does.
  const byLength = (a: [string, string], b: [string, string]) => b[0].length - a[0].length;
  return {
    dir,
    workspace: copy,
    stateDir,
    loaded: {
      ...loaded,
      config: { ...loaded.config, servers, workspace: copy, stateDir },
      workspace: copy,
      stateDir,
    },
    env: { KEEL_STATE_DIR: path.join(stateDir, 'servers') },
    substitutions: { recorded: subs.recorded.sort(byLength), replayed: subs.replayed.sort(byLength) },
    notes,
  };
}
