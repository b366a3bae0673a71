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
