import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { ChatScript } from '@keel/testing/chat-server';
import { git } from '@keel/testing';
import { runTask } from '../../src/engine/runTask.js';
import { createHarness, task, type Harness } from '../helpers.js';
import { serve } from '../scripted.js';

/**
 * What each attack declares, so the suite's README table is generated from the tests: the issue
 * item it proves, whether it succeeded on main before the fix (`failed`: the guarantee failed
 * there) or is a regression guard (`guard`), and the benign twin that must still pass unattended.
 */
export interface AttackMeta {
  id: string;
  issue: number;
  item: number;
  onMain: 'failed' | 'guard';
  attack: string;
  guarantee: string;
  benign: string;
}

/** A third-party MCP server's tool: what it answers (a JSON-RPC error, or a result). */
export interface ExternalTool {
  name: string;
  readOnly: boolean;
  answer: { error: string } | { text: string; structured?: Record<string, unknown> };
}

const externalBin = fileURLToPath(new URL('./fixtures/externalServer.mjs', import.meta.url));

/** The config of a third-party server (a real stdio process) offering `tools`. */
export const externalServer = (tools: ExternalTool[]) => ({
  command: process.execPath,
  args: [externalBin],
  env: { EXTERNAL_TOOLS: JSON.stringify(tools) },
});

/**
 * A workspace with a bare `origin` beside it (the only remote git_push may reach), the built-in
 * filesystem and git servers plus any `extraServers`, and one model (`gpt`, the scripted chat
 * server) that every agent uses with every tool of every server.
 */
export async function pushWorld(options: {
  script: ChatScript;
  /** Leave the built-in filesystem server out (a third party's tool may then take one of its names). */
  filesystem?: boolean;
  extraServers?: Record<string, unknown>;
  config?: Record<string, unknown>;
  files?: Record<string, string>;
}) {
  const server = await serve(options.script);
  const servers: Record<string, unknown> = {
    ...(options.filesystem === false ? {} : { filesystem: { builtin: 'filesystem', args: ['--root', '.'] } }),
    git: { builtin: 'git', args: ['--root', '.', '--root', '../origin.git', '--push-remote', 'origin'] },
    ...options.extraServers,
  };
  const agent = { model: 'gpt', tools: Object.fromEntries(Object.keys(servers).map((s) => [s, ['*']])) };
  const h = await createHarness({
    files: options.files ?? { 'README.md': '# app\n' },
    config: {
      servers,
      models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: server.url } },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: { planning: agent, coding: agent, review: agent },
      ...options.config,
    },
  });
  const origin = path.join(h.dir, 'origin.git');
  await git(h.dir, ['init', '-q', '--bare', origin]);
  await git(h.repo.dir, ['remote', 'add', 'origin', '../origin.git']);
  return { h, server, origin };
}

export const runIn = (h: Harness) =>
  runTask({
    loaded: h.loaded,
    store: h.store,
    env: {},
    task: task({
      description: 'Look at the repository and plan the next change.',
      tests: null,
      deploy: null,
    }),
  });

/** The refs on a bare remote, `refname sha` a line ('' when nothing was pushed). */
export const refsOf = async (origin: string) =>
  (await git(origin, ['for-each-ref', '--format=%(refname) %(objectname)'])).trim();

/** What reached the built-in servers: the audit log they share in the state dir. */
export function audited(h: Harness): Array<{ tool: string; outcome: string }> {
  const file = path.join(h.loaded.stateDir, 'servers', 'keel.db');
  // No server wrote anything yet: no store.
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true });
  try {
    if (db.prepare("SELECT name FROM sqlite_master WHERE name = 'audit_log'").get() === undefined) return [];
    return db.prepare('SELECT tool, outcome FROM audit_log ORDER BY seq').all() as Array<{
      tool: string;
      outcome: string;
    }>;
  } finally {
    db.close();
  }
}
