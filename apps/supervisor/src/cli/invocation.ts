import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/** The config names `keel` looks for in the current directory, in order. */
export const configFileNames = ['keel.config.yaml', 'keel.config.yml', 'keel.config.json'] as const;

/** The config a command finds on its own in `cwd`: KEEL_CONFIG, else the first config file there. */
export function discoverConfig(cwd: string, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env['KEEL_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(cwd, fromEnv);
  for (const name of configFileNames) {
    const candidate = path.join(cwd, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Quotes a word for a POSIX shell only when it needs it. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./~-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

const realpath = (file: string): string | undefined => {
  try {
    return realpathSync(file);
  } catch {
    return undefined;
  }
};

/** The first `name` on PATH that is an executable file, as the shell would find it. */
export function whichOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there, or not executable: the shell would look further too
    }
  }
  return undefined;
}

/**
 * The files that are "this keel": the running bin and the package's declared bin (the shim a global
 * install or `pnpm keel:link` points at), both resolved through links.
 */
function sameKeel(bin: string): Set<string> {
  const files = new Set<string>();
  const own = realpath(bin);
  if (own === undefined) return files;
  files.add(own);
  const pkgFile = path.join(path.dirname(own), '..', 'package.json');
  try {
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { bin?: Record<string, string> };
    const declared = pkg.bin?.['keel'];
    const resolved =
      declared === undefined ? undefined : realpath(path.join(path.dirname(pkgFile), declared));
    if (resolved !== undefined) files.add(resolved);
  } catch {
    // no package.json beside the bin (a bundled copy): only the bin itself is this keel
  }
  return files;
}

export interface CommandOptions {
  /** The config the command must use; `-c CONFIG` is added unless it would be found anyway. */
  config?: string;
  /** The directory the command is typed in (after a printed `cd`); default where this keel ran. */
  cwd?: string;
}

/** How every command Keel prints is written, so that it runs as printed. */
export interface Invocation {
  /** `keel` when the `keel` on PATH is this one, else `node /abs/path/bin.js`. */
  readonly prefix: string;
  /** Whether `keel` on PATH runs this very bin. */
  readonly onPath: boolean;
  /** Where the person typed the command that is running (their shell's directory). */
  readonly shellCwd: string;
  /** `keel ARGS` as a person types it, with `-c CONFIG` when the config would not be found. */
  command(args: string, options?: CommandOptions): string;
  /** `cd DIR`, absolute: it works from wherever the person is when they read it, even a second time. */
  cd(dir: string): string;
  /** A path as a person types it from `from` (default the shell's directory). */
  pathFrom(file: string, from?: string): string;
  /**
   * Mentions of `keel SUBCOMMAND …` in a message (a hint, a note) made runnable: each gets the
   * prefix; a backticked one also gets `-c CONFIG` when its subcommand takes a config.
   */
  rewrite(text: string, options?: { config?: string }): string;
}

export interface InvocationOptions {
  /** The running bin (`dist/bin.js`); undefined when keel runs in-process (tests): then `keel`. */
  bin: string | undefined;
  env: NodeJS.ProcessEnv;
  /** The process's working directory. */
  cwd: string;
  /** Subcommand names, and whether a command (`audit verify`) takes `-c CONFIG`. */
  subcommands: readonly string[];
  takesConfig(words: readonly string[]): boolean;
}

/** One place that decides how a printed command is written (see `Invocation`). */
export function createInvocation(options: InvocationOptions): Invocation {
  const { env } = options;
  // `pnpm keel …` runs the script in the checkout's root: the person's shell is where pnpm was called.
  // Only when the package script is the one running keel (the variables leak into every child).
  const script = env['npm_lifecycle_script'] ?? '';
  const shellCwd =
    env['INIT_CWD'] !== undefined && env['INIT_CWD'] !== '' && /(^|[\s/])(keel|bin\.js)(\s|$)/.test(script)
      ? env['INIT_CWD']
      : options.cwd;
  let onPath = options.bin === undefined;
  if (options.bin !== undefined) {
    const found = whichOnPath('keel', env);
    const resolved = found === undefined ? undefined : realpath(found);
    onPath = resolved !== undefined && sameKeel(options.bin).has(resolved);
  }
  const prefix = onPath ? 'keel' : `node ${shellWord(path.resolve(options.bin!))}`;
  const pathFrom = (file: string, from: string = shellCwd) => {
    const relative = path.relative(from, file);
    return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative)
      ? relative
      : path.resolve(file);
  };
  const command = (args: string, given: CommandOptions = {}) => {
    const cwd = given.cwd ?? shellCwd;
    const config =
      given.config === undefined || discoverConfig(cwd, env) === path.resolve(given.config)
        ? ''
        : ` -c ${shellWord(pathFrom(given.config, cwd))}`;
    return `${prefix} ${args}${config}`;
  };
  const names = [...options.subcommands].sort((a, b) => b.length - a.length).join('|');
  const bare = new RegExp(`(^|[\\s(:'"])keel (?=(?:${names})\\b)`, 'g');
  const quoted = /`keel ([^`]+)`/g;
  return {
    prefix,
    onPath,
    shellCwd,
    command,
    cd: (dir) => `cd ${shellWord(path.resolve(dir))}`,
    pathFrom,
    rewrite(text, given = {}) {
      return text
        .replace(quoted, (whole, inner: string) => {
          const words = inner.split(/\s+/);
          if (!options.subcommands.includes(words[0]!)) return whole;
          const config =
            given.config !== undefined && options.takesConfig(words) && !/(^|\s)(-c|--config)\s/.test(inner)
              ? given.config
              : undefined;
          return `\`${command(inner, config === undefined ? {} : { config })}\``;
        })
        .replace(bare, (_whole, before: string) => `${before}${prefix} `);
    },
  };
}

/**
 * Commands for a person to type, one per line (indented two spaces), each followed by what it does
 * (indented six): a line copied whole runs as it is, in any shell (no `#` comments, which zsh does
 * not take interactively). `cd`, when given, comes first.
 */
export function formatCommands(
  rows: ReadonlyArray<readonly [command: string, why?: string]>,
  cd?: string,
): string {
  return [
    ...(cd === undefined ? [] : [`  ${cd}`]),
    ...rows.flatMap(([command, why]) => [`  ${command}`, ...(why === undefined ? [] : [`      ${why}`])]),
  ].join('\n');
}
