import { KeelError, type StateStore, type ToolContext } from '@keel/kit';
import { manifestOf, type Manifest, type ManifestEntry } from '../build/manifest.js';
import type { CommandTargetConfig } from '../config/config.js';
import type { DeployTarget, PrepareOptions, PreparedRelease } from './target.js';

const releaseIdPattern = /^[a-z0-9][a-z0-9.-]{0,127}$/;
const outputTailChars = 600;

/**
 * A target driven by commands a person configured (a container platform's CLI, rsync, a script):
 * `deploy` makes a new release live, `rollback` an earlier one, and `current` (optional) prints what
 * is live. The commands run from argument arrays, without a shell, in the project root. What each
 * release held is kept in the state, for the next plan's diff.
 */
export class CommandTarget implements DeployTarget {
  readonly type = 'command';
  readonly observesCurrent: boolean;
  readonly description: string;
  readonly #config: CommandTargetConfig;
  readonly #store: StateStore;
  readonly #environment: string;
  readonly #projectRoot: string;

  constructor(options: {
    config: CommandTargetConfig;
    store: StateStore;
    environment: string;
    projectRoot: string;
  }) {
    this.#config = options.config;
    this.#store = options.store;
    this.#environment = options.environment;
    this.#projectRoot = options.projectRoot;
    this.observesCurrent = options.config.current !== undefined;
    this.description = options.config.deploy.join(' ');
  }

  async current(ctx: ToolContext): Promise<string | null> {
    if (this.#config.current === undefined) {
      // Without a `current` command, what this server last recorded is all there is to go on.
      const record = await this.#store.get<{ current: string | null }>(`env/${this.#environment}`);
      return record?.value.current ?? null;
    }
    const result = await this.#run(this.#config.current, { releaseId: '', previous: '', build: '' }, ctx);
    const printed = result.stdout.trim();
    if (result.exitCode !== 0) {
      throw new KeelError(
        'UNAVAILABLE',
        `the current command of '${this.#environment}' ${describeExit(result)}`,
        {
          hint: 'Fix the command or the target it asks, then retry.',
          details: { output: tail(result.output) },
        },
      );
    }
    if (printed === '') return null;
    if (!releaseIdPattern.test(printed)) {
      throw new KeelError(
        'UNKNOWN_STATE',
        `the current command of '${this.#environment}' printed '${printed.slice(0, 200)}', which is not a release id`,
        {
          hint: 'It must print the live release id (as passed to the deploy command), or nothing when none is live.',
        },
      );
    }
    return printed;
  }

  async manifest(releaseId: string): Promise<Manifest | null> {
    const entry = await this.#store.get<ManifestEntry[]>(this.#manifestKey(releaseId));
    return entry === undefined ? null : manifestOf(entry.value);
  }

  async releases(): Promise<string[]> {
    const prefix = `release/${this.#environment}/`;
    const ids: string[] = [];
    for (let after: string | undefined; ;) {
      const page = await this.#store.list({ prefix, limit: 500, ...(after === undefined ? {} : { after }) });
      ids.push(...page.map((entry) => entry.key.slice(prefix.length)));
      if (page.length < 500) return ids.sort();
      after = page[page.length - 1]!.key;
    }
  }

  /** Remembers what the release holds; the deploy command does the copying. */
  async prepare(options: PrepareOptions): Promise<PreparedRelease> {
    await this.#store.put(this.#manifestKey(options.releaseId), options.manifest.entries);
    return { copied: 0, linked: 0, bytesWritten: 0 };
  }

  async activate(
    releaseId: string,
    options: { fresh: boolean; build: string; previous: string | null; ctx: ToolContext },
  ): Promise<void> {
    const which = options.fresh ? 'deploy' : 'rollback';
    const result = await this.#run(
      options.fresh ? this.#config.deploy : this.#config.rollback,
      { releaseId, previous: options.previous ?? '', build: options.build },
      options.ctx,
    );
    if (result.exitCode !== 0) {
      throw new TargetCommandError(
        `the ${which} command of '${this.#environment}' for '${releaseId}' ${describeExit(result)}`,
        tail(result.output),
        result.exitCode === null,
      );
    }
  }

  async deactivate(): Promise<boolean> {
    return false;
  }

  async remove(releaseId: string): Promise<void> {
    await this.#store.delete(this.#manifestKey(releaseId));
  }

  async sweep(): Promise<void> {}

  #manifestKey(releaseId: string): string {
    return `manifest/${this.#environment}/${releaseId}`;
  }

  async #run(
    argv: readonly string[],
    values: { releaseId: string; previous: string; build: string },
    ctx: ToolContext,
  ): Promise<{
    exitCode: number | null;
    timedOut: boolean;
    stdout: string;
    output: string;
    signal: string | null;
  }> {
    const substitute = (arg: string) =>
      arg
        .replaceAll('{releaseId}', values.releaseId)
        .replaceAll('{previousRelease}', values.previous)
        .replaceAll('{build}', values.build)
        .replaceAll('{environment}', this.#environment);
    const [command, ...args] = argv.map(substitute);
    const result = await ctx.run({
      command: command!,
      args,
      cwd: this.#projectRoot,
      timeoutMs: this.#config.timeoutMs,
      // A killed target command has an unknown outcome, which the caller reports.
      onTimeout: 'result',
      maxOutputBytes: 65_536,
      env: {
        KEEL_RELEASE_ID: values.releaseId,
        KEEL_PREVIOUS_RELEASE: values.previous,
        KEEL_BUILD_DIR: values.build,
        KEEL_ENVIRONMENT: this.#environment,
      },
    });
    return {
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      stdout: result.stdout.text,
      output: `${result.stdout.text}${result.stderr.text}`,
      signal: result.signal,
    };
  }
}

/**
 * A target command failed. By the contract a non-zero exit means nothing went live; a command that
 * was killed (timeout) has `unknownOutcome`: it may have got part of the way.
 */
export class TargetCommandError extends Error {
  constructor(
    message: string,
    readonly output: string,
    readonly unknownOutcome: boolean,
  ) {
    super(message);
  }
}

function describeExit(result: { exitCode: number | null; timedOut: boolean; signal: string | null }): string {
  if (result.timedOut) return 'did not finish in time';
  if (result.exitCode === null) return `was killed by ${result.signal ?? 'a signal'}`;
  return `exited ${result.exitCode}`;
}

function tail(text: string): string {
  const trimmed = text.trim();
  return trimmed.length > outputTailChars ? `…${trimmed.slice(-outputTailChars)}` : trimmed;
}
