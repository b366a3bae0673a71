import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { onTestFinished } from 'vitest';
import { createGitRepo, tempDir, type GitRepo } from '@keel/testing';
import {
  startScriptedChatServer,
  type RecordedChatRequest,
  type ScriptedChatCall,
  type ScriptedReply,
} from '@keel/testing/chat-server';

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

/** One tool call the scripted model makes, one per turn; after the last it hands in an empty change. */
export type Move = { name: string; arguments: Record<string, unknown> };

export const emptyChange = { version: 'change.v1', summary: 'done', files: [], commit: null };

/** A model of the attack's own making: what it answers to each request (stateless, as a real model). */
export type Script = (call: ScriptedChatCall) => ScriptedReply;

export interface RunOptions {
  limits?: Record<string, unknown>;
  /** The usage every reply reports (`null`: none at all, as some local servers send); default: counted from the bytes. */
  usage?: ScriptedReply['usage'];
  /** Fields of the task file over the attack's defaults (e.g. `deploy: { environment: 'staging' }`). */
  task?: Record<string, unknown>;
}

export interface Project {
  /** The temp dir holding the workspace, the config and the state dir. */
  dir: string;
  repo: GitRepo;
  /** The supervisor's state dir (`state` beside the workspace, or `.keel` inside it). */
  stateDir: string;
  /** The workspace (a git repository). */
  ws: string;
  configFile: string;
  /** The scripted model's base URL, for a config that names its own models. */
  chatUrl: string;
  /** Every request the scripted model received, over all runs of the project. */
  readonly requests: readonly RecordedChatRequest[];
  /** Writes the config: the built-in servers on the workspace, the scripted model, `extra` merged over. */
  configure(extra?: Record<string, unknown>): Promise<void>;
  /**
   * `keel run` of a single-agent task whose model makes `moves` in order (one per turn), then
   * hands in an empty change — or answers as `script` says. Returns the run record and what
   * `keel show` says of it.
   */
  run(moves: readonly Move[] | Script, options?: RunOptions): Promise<Run>;
  /** `keel ARGS --config CONFIG` in the project's directory (`env` over the caller's). */
  keel(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<KeelResult>;
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

export interface ModelCallShown {
  step: number;
  agent: string;
  inputTokens: number;
  outputTokens: number;
  reservedInputTokens: number;
  reservedOutputTokens: number;
}

export interface Run {
  id: string;
  keel: KeelResult;
  status: string;
  outcome: { message: string; limit?: string };
  tokens: { input: number; output: number };
  toolCalls: ToolCallShown[];
  modelCalls: ModelCallShown[];
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
  let moves: readonly Move[] | Script = [];
  let usage: RunOptions['usage'];
  // Stateless, like the playbook model and like a real model: the turn is the number of assistant
  // messages in the conversation it is sent, so a step asked afresh on resume (an accepted
  // divergence) gets the same move it got the first time, not the next one in line.
  const chat = await startScriptedChatServer({
    script: (call): ScriptedReply => {
      if (typeof moves === 'function') return moves(call);
      const messages = (call.body?.messages ?? []) as Array<{ role: string }>;
      const next = moves[messages.filter((m) => m.role === 'assistant').length];
      return {
        toolCalls: [next ?? { name: 'submit_change', arguments: emptyChange }],
        ...(usage === undefined ? {} : { usage }),
      };
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
    stateDir: inside ? path.join(ws, '.keel') : path.join(dir, 'state'),
    configFile,
    chatUrl: chat.url,
    get requests() {
      return chat.requests;
    },
    configure,
    async run(next, runOptions = {}) {
      moves = next;
      usage = runOptions.usage;
      const first = chat.requests.length;
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
          ...runOptions.task,
        }),
      );
      const result = await keel(dir, ['run', taskFile, '--config', configFile, '--json', '--quiet']);
      if (result.stdout.trim() === '')
        throw new Error(`keel run printed no record (exit ${result.code}): ${result.stderr}`);
      const record = JSON.parse(result.stdout) as Run & { id: string };
      const shown = await keel(dir, ['show', record.id, '--config', configFile, '--json']);
      const show = JSON.parse(shown.stdout) as {
        toolCalls: ToolCallShown[];
        modelCalls: ModelCallShown[];
        events: Array<{ type: string; data: unknown }>;
      };
      const last = chat.requests.at(-1);
      const messages = (last?.body?.messages ?? []) as Array<{ role: string; content: unknown }>;
      return {
        id: record.id,
        keel: result,
        status: record.status,
        outcome: record.outcome,
        tokens: record.tokens,
        toolCalls: show.toolCalls,
        modelCalls: show.modelCalls,
        events: show.events,
        toolMessages: messages.filter((m) => m.role === 'tool').map((m) => String(m.content)),
      };
    },
    keel: (args, env) => keel(dir, [...args, '--config', configFile], env),
    exists: (file) => existsSync(path.join(ws, file)),
    read: (file) => readFileSync(path.join(ws, file), 'utf8'),
  };
}
