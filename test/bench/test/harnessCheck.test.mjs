// The harness bench reports a contender's figures only when it made exactly the scripted calls.
// A minimal agent loop (the scripted model over real HTTP, the three Keel servers over stdio, real
// git) passes the check; each way of straying from the script is caught.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModel } from '../src/harness/chat.mjs';
import {
  checkConversation,
  checkWorkspace,
  createWorkspace,
  instructions,
  resetWorkspace,
  steps,
} from '../src/harness/task.mjs';

const supervisorManifest = fileURLToPath(import.meta.resolve('@keel/supervisor/package.json'));
const serverBin = (packageName, bin) => {
  const manifestPath = createRequire(supervisorManifest).resolve(`${packageName}/package.json`);
  return path.join(path.dirname(manifestPath), JSON.parse(readFileSync(manifestPath, 'utf8')).bin[bin]);
};

let dir;
let workspace;
let model;
const clients = [];
const toolsOf = new Map();

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keel-bench-check-'));
  workspace = createWorkspace(path.join(dir, 'ws'));
  model = await startModel({ finish: 'text', latencyMs: () => 0, workspaceDir: workspace.dir });
  for (const [pkg, bin] of [
    ['@keel/server-filesystem', 'keel-filesystem'],
    ['@keel/server-git', 'keel-git'],
    ['@keel/server-test-runner', 'keel-test-runner'],
  ]) {
    const client = new Client({ name: 'bench-check', version: '0.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [serverBin(pkg, bin), '--root', '.', '--log-level', 'error'],
        cwd: workspace.dir,
        env: { ...process.env, KEEL_STATE_DIR: path.join(dir, 'state') },
        stderr: 'pipe',
      }),
    );
    clients.push(client);
    for (const tool of (await client.listTools()).tools) toolsOf.set(tool.name, { client, tool });
  }
});

afterAll(async () => {
  for (const client of clients) await client.close();
  await model?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * One task by a minimal agent loop: ask the model, run the call it names on its server, send the
 * result back, until it answers with text. `stray` may change what the loop does at a step.
 */
async function agentTask(stray = {}) {
  resetWorkspace(workspace);
  const from = model.requests.length;
  const tools = [...toolsOf.values()].map(({ tool }) => ({
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: tool.inputSchema },
  }));
  const messages = [
    { role: 'system', content: 'You are a coding agent.' },
    { role: 'user', content: instructions },
  ];
  for (let step = 0; step < 20; step++) {
    const response = await fetch(`${model.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bench-model', messages, tools }),
    });
    const [choice] = (await response.json()).choices;
    const call = choice.message.tool_calls?.[0];
    if (call === undefined) break;
    const args =
      stray.args?.(step, JSON.parse(call.function.arguments)) ?? JSON.parse(call.function.arguments);
    const { client } = toolsOf.get(call.function.name);
    const result =
      stray.fake?.(step) ?? (await client.callTool({ name: call.function.name, arguments: args }));
    const text = result.content.map((part) => part.text ?? '').join('\n');
    messages.push({
      role: 'assistant',
      content: null,
      tool_calls: [{ ...call, function: { ...call.function, arguments: JSON.stringify(args) } }],
    });
    if (stray.dropResult !== step) messages.push({ role: 'tool', tool_call_id: call.id, content: text });
  }
  if (stray.extraRequest === true)
    await fetch(`${model.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bench-model', messages }),
    });
  return {
    conversation: checkConversation(model.requests.slice(from)),
    workspace: checkWorkspace(workspace),
  };
}

const edit = steps.findIndex((s) => s.name === 'edit_file');
const tests = steps.findIndex((s) => s.name === 'run_tests');
const commit = steps.findIndex((s) => s.name === 'git_commit');

describe('the harness bench check', () => {
  it('passes an agent that made exactly the scripted calls', async () => {
    expect(await agentTask()).toEqual({ conversation: [], workspace: [] });
  });

  it('fails an agent that changed a call’s arguments', async () => {
    const { conversation } = await agentTask({
      args: (step, args) => (step === edit ? { ...args, dryRun: true } : undefined),
    });
    expect(conversation[0]).toMatch(
      /^request 6: step 5 went back as edit_file\(.*"dryRun":true.*\), scripted edit_file/,
    );
  });

  it('fails an agent that answered a call without running it', async () => {
    const { conversation, workspace: left } = await agentTask({
      fake: (step) => (step === tests ? { content: [{ type: 'text', text: 'ok' }] } : undefined),
    });
    expect(conversation[0]).toBe('request 7: step 6 (run_tests) result does not show /passed/: ok');
    expect(left).toEqual([]);
  });

  it('fails an agent that dropped a result from the history', async () => {
    const { conversation } = await agentTask({ dropResult: 2 });
    expect(conversation).toContain('request 4: 5 messages after the opening, expected 6');
  });

  it('fails an agent that asked the model once more', async () => {
    const { conversation } = await agentTask({ extraRequest: true });
    expect(conversation[0]).toBe('14 model requests, the script has 13');
  });

  it('fails an agent whose commit did not happen', async () => {
    const { workspace: left } = await agentTask({
      fake: (step) =>
        step === commit ? { content: [{ type: 'text', text: '[main 0123456] Fix add' }] } : undefined,
    });
    expect(left).toEqual([
      "HEAD is 'start', not the scripted commit",
      'the tree is not clean: M  src/math.js',
    ]);
  });
});
