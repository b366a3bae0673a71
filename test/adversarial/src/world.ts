import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { onTestFinished } from 'vitest';
import { createGitRepo, tempDir, type GitRepo } from '@keel/testing';
import { startScriptedChatServer, type ScriptedReply } from '@keel/testing/chat-server';

const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

/** The `keel` bin of the workspace's supervisor, run as a user runs it. */
export const keelBin = path.join(
  path.dirname(require.resolve('@keel/supervisor/package.json')),
  'bin/keel.js',
);

export const writeTools = [
  'read_file',
  'list_directory',
  'write_file',
  'edit_file',
  'apply_patch',
  'delete',
  'move',
  'create_directory',
];

export interface KeelResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `keel ARGS` in `cwd` with the caller's environment plus `env`; never throws on a non-zero exit. */
export async function keel(
  cwd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<KeelResult> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [keelBin, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** One tool call the scripted model makes, then (on every later request) it hands in an empty change. */
export type Move = { name: string; arguments: Record<string, unknown> };

export const emptyChange = { version: 'change.v1', summary: 'done', files: [], commit: null };

export interface Project {
  /** The temp dir holding the workspace, the config and the state dir. */
  dir: string;
  repo: GitRepo;
  /** The workspace (a git repository). */
  ws: string;
  configFile: string;
  /** The scripted model's base URL, for a config that names its own models. */
  chatUrl: string;
  /** Writes the config: the built-in servers on the workspace, the scripted model, `extra` merged over. */
  configure(extra?: Record<string, unknown>): Promise<void>;
  /**
   * `keel run` of a single-agent task whose model makes `moves` in order (one per request), then
   * hands in an empty change. Returns the run record and what `keel show` says of it.
   */
  run(moves: readonly Move[], options?: { limits?: Record<string, unknown> }): Promise<Run>;
  /** `keel ARGS --config CONFIG` in the project's directory. */
  keel(args: readonly string[]): Promise<KeelResult>;
  exists(file: string): boolean;
  read(file: string): string;
}

export interface ToolCallShown {
  server: string;
  tool: string;
  outcome: string;
  effect: unknown;
  result: unknown;
}

export interface Run {
  id: string;
  keel: KeelResult;
  status: string;
  outcome: { message: string; limit?: string };
  toolCalls: ToolCallShown[];
  events: Array<{ type: string; data: unknown }>;
  /** The text of each tool message the model received, in order. */
  toolMessages: string[];
}

/**
 * A project for one attack: a git repository holding `files` (and `links`, committed as symlinks),
 * with `keel.config.yaml` beside it. The model is the scripted chat server on loopback.
 */
export async function createProject(
  options: {
    files?: Record<string, string>;
    links?: Record<string, string>;
    /**
     * `beside` (default): the config and state dir next to the workspace. `inside`: the config at the
     * workspace's root with `workspace: .` and `stateDir: .keel`, the layout `keel init` wrote on main.
     */
    layout?: 'beside' | 'inside';
  } = {},
): Promise<Project> {
  const inside = options.layout === 'inside';
  const dir = await tempDir('keel-adv-');
  const ws = path.join(dir, 'project');
  await mkdir(ws);
  const repo = await createGitRepo({ dir: ws, files: options.files ?? { 'README.md': '# project\n' } });
  if (options.links !== undefined) {
    for (const [link, target] of Object.entries(options.links)) {
      await mkdir(path.dirname(path.join(ws, link)), { recursive: true });
      await symlink(target, path.join(ws, link));
    }
    await repo.git(['add', '-A']);
    await repo.git(['commit', '-q', '-m', 'links']);
  }
  const configFile = path.join(inside ? ws : dir, 'keel.config.yaml');
  let moves: readonly Move[] = [];
  let offset = 0;
  const chat = await startScriptedChatServer({
    script: (call): ScriptedReply => {
      const next = moves[call.index - offset];
      return next === undefined
        ? { toolCalls: [{ name: 'submit_change', arguments: emptyChange }] }
        : { toolCalls: [next] };
    },
  });
  onTestFinished(() => chat.close());
  let extraConfig: Record<string, unknown> = {};
  const configure = async (extra: Record<string, unknown> = {}) => {
    extraConfig = extra;
    const agent = {
      model: 'gpt',
      tools: { filesystem: writeTools, git: ['git_status', 'git_add', 'git_commit'] },
    };
    await writeFile(
      configFile,
      stringify({
        version: 1,
        workspace: inside ? '.' : 'project',
        stateDir: inside ? '.keel' : 'state',
        servers: {
          filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
          git: { builtin: 'git', args: ['--root', '.'] },
        },
        models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: chat.url } },
        prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
        agents: { planning: agent, coding: agent, review: agent },
        ...extraConfig,
      }),
    );
  };
  await configure();
  return {
    dir,
    repo,
    ws,
    configFile,
    chatUrl: chat.url,
    configure,
    async run(next, runOptions = {}) {
      moves = next;
      offset = chat.requests.length;
      const first = offset;
      const taskFile = path.join(dir, `task-${first}.yaml`);
      await writeFile(
        taskFile,
        stringify({
          type: 'attack',
          title: 'an attack',
          description: 'do what the model says',
          mode: 'single',
          tests: null,
          deploy: null,
          limits: { steps: 10, ...runOptions.limits },
        }),
      );
      const result = await keel(dir, ['run', taskFile, '--config', configFile, '--json', '--quiet']);
      if (result.stdout.trim() === '')
        throw new Error(`keel run printed no record (exit ${result.code}): ${result.stderr}`);
      const record = JSON.parse(result.stdout) as Run & { id: string };
      const shown = await keel(dir, ['show', record.id, '--config', configFile, '--json']);
      const show = JSON.parse(shown.stdout) as {
        toolCalls: ToolCallShown[];
        events: Array<{ type: string; data: unknown }>;
      };
      const last = chat.requests.at(-1);
      const messages = (last?.body?.messages ?? []) as Array<{ role: string; content: unknown }>;
      return {
        id: record.id,
        keel: result,
        status: record.status,
        outcome: record.outcome,
        toolCalls: show.toolCalls,
        events: show.events,
        toolMessages: messages.filter((m) => m.role === 'tool').map((m) => String(m.content)),
      };
    },
    keel: (args) => keel(dir, [...args, '--config', configFile]),
    exists: (file) => existsSync(path.join(ws, file)),
    read: (file) => readFileSync(path.join(ws, file), 'utf8'),
  };
}
