import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { onTestFinished } from 'vitest';
import { createGitRepo, tempDir, type GitRepo } from '@keel/testing';
import { loadConfig, type LoadedConfig } from '../src/config/load.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { TaskStore, TaskWriter } from '../src/store/taskStore.js';
import { parseTaskFile, type TaskFile } from '../src/task/taskFile.js';

/** A task's world: a git repository as the workspace, a config beside it, a store in its state dir. */
export interface Harness {
  dir: string;
  repo: GitRepo;
  loaded: LoadedConfig;
  store: TaskStore;
}

/** The servers every harness config starts: the three built-in servers on the workspace. */
export const builtinServers = {
  filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
  git: { builtin: 'git', args: ['--root', '.'] },
  tests: { builtin: 'test-runner', args: ['--root', '.'] },
};

/** Agents on the playbook model that need only the filesystem server: coding writes files, the others read. */
export const fileAgents = {
  planning: { model: 'playbook', tools: { filesystem: ['read_file'] } },
  coding: { model: 'playbook', tools: { filesystem: ['write_file'] } },
  review: { model: 'playbook', tools: { filesystem: ['read_file'] } },
};

export const readTools = ['read_file', 'list_directory', 'search_text', 'stat'];
export const writeTools = [
  'read_file',
  'write_file',
  'edit_file',
  'apply_patch',
  'delete',
  'move',
  'create_directory',
];

/**
 * Writes `keel.config.yaml` (merged over a default with the three built-in servers and the given
 * models and agents) next to a fresh git repository holding `files`, and opens the task store.
 */
export async function createHarness(options: {
  files?: Record<string, string>;
  config?: Record<string, unknown>;
}): Promise<Harness> {
  const dir = await tempDir('keel-sup-');
  await mkdir(path.join(dir, 'ws'));
  const repo = await createGitRepo({
    dir: path.join(dir, 'ws'),
    files: options.files ?? { 'README.md': '# ws\n' },
  });
  const config = {
    version: 1,
    workspace: 'ws',
    stateDir: 'state',
    servers: builtinServers,
    models: { playbook: { provider: 'playbook' } },
    agents: {
      planning: {
        model: 'playbook',
        tools: { filesystem: readTools, git: ['git_status', 'git_log', 'git_diff'] },
      },
      coding: {
        model: 'playbook',
        tools: {
          filesystem: writeTools,
          git: ['git_status', 'git_add', 'git_commit', 'git_diff'],
          tests: ['run_tests'],
        },
      },
      review: { model: 'playbook', tools: { filesystem: readTools, git: ['git_diff', 'git_show'] } },
    },
    ...options.config,
  };
  const file = path.join(dir, 'keel.config.yaml');
  await writeFile(file, stringify(config));
  const loaded = loadConfig(file);
  const store = createSqliteTaskStore(loaded.stateDir);
  onTestFinished(() => store.close());
  return { dir, repo, loaded, store };
}

/** A task file value, validated like `keel run` does. */
export function task(value: Record<string, unknown>): TaskFile {
  return parseTaskFile(
    { type: 'test', title: 'a test task', description: 'do the thing', ...value },
    'task.yaml',
  );
}

/** A task's writer as its owner holds it: claimed here (no owner before), at the epoch the claim returned. */
export async function ownerWriter(store: TaskStore, taskId: string): Promise<TaskWriter> {
  const claim = await store.claimOwner(taskId, null, {
    pid: process.pid,
    startTime: '',
    host: 'test',
    serverPids: [],
  });
  if (!claim.ok) throw new Error(`task ${taskId} has an owner already`);
  return store.writer(taskId, claim.epoch);
}

/**
 * A stdio MCP server as a script (newline-delimited JSON-RPC, no SDK), for what no Keel server does:
 * it answers `initialize` as `name` and `tools/list` with `tools`, and each `tools/call` with what
 * `onCall` returns — the source of a function `(request) => result` run in the script (it may exit).
 * `preamble` is source placed first (imports).
 */
export function rawServerScript(options: {
  name: string;
  tools: unknown[];
  onCall: string;
  preamble?: string;
}): string {
  return `${options.preamble ?? ''}
const write = (message) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...message }) + '\\n');
const onCall = ${options.onCall};
let buffered = '';
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  for (let nl = buffered.indexOf('\\n'); nl >= 0; nl = buffered.indexOf('\\n')) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim() === '') continue;
    const request = JSON.parse(line);
    if (request.method === 'initialize')
      write({
        id: request.id,
        result: {
          protocolVersion: request.params.protocolVersion,
          capabilities: { tools: {} },
          serverInfo: { name: ${JSON.stringify(options.name)}, version: '1.0.0' },
        },
      });
    else if (request.method === 'tools/list') write({ id: request.id, result: { tools: ${JSON.stringify(options.tools)} } });
    else if (request.method === 'tools/call') write({ id: request.id, result: onCall(request) });
    else if (request.id !== undefined) write({ id: request.id, result: {} });
  }
});
`;
}
