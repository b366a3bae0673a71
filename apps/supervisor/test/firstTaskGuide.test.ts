import { execFile } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { tempDir } from '@keel/testing';
import {
  startScriptedChatServer,
  type ScriptedChatCall,
  type ScriptedChatServer,
  type ScriptedReply,
} from '@keel/testing/chat-server';
import { defaultLimits } from '../src/config/schema.js';
import { Budget } from '../src/limits/budget.js';

/**
 * docs/first-task.md, followed as written: its shell blocks run in order in bash with `keel` on the
 * PATH (linked as `pnpm keel:link` links it), its files are written as shown, and each model it
 * names is played by the scripted chat server from @keel/testing. The one liberty taken: each
 * config's `baseURL` is pointed at that server, as the guide says to do for a server elsewhere.
 */
const guideFile = new URL('../../../docs/first-task.md', import.meta.url);
const guide = readFileSync(guideFile, 'utf8');
const execFileAsync = promisify(execFile);

interface Block {
  lang: string;
  tags: string[];
  text: string;
}

const blocks: Block[] = [...guide.matchAll(/^```(\w+)([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({
  lang: m[1]!,
  tags: m[2]!.trim().split(/\s+/).filter(Boolean),
  text: m[3]!,
}));
const block = (lang: string, ...tags: string[]) => {
  const found = blocks.filter((b) => b.lang === lang && tags.every((t, i) => b.tags[i] === t));
  if (found.length !== 1)
    throw new Error(`docs/first-task.md: ${found.length} blocks \`${lang} ${tags.join(' ')}\``);
  return found[0]!;
};

/** A bash session: each block runs from where the previous one left off, with its exports. */
async function shell(keelPath: string) {
  const home = await tempDir('keel-guide-');
  const state = path.join(home, '.session');
  writeFileSync(path.join(home, '.cwd'), home);
  writeFileSync(state, '');
  // The reader's own git identity, as any git user has it (the git server reads it too).
  writeFileSync(
    path.join(home, '.gitconfig'),
    '[user]\n\tname = Guide Reader\n\temail = reader@example.com\n',
  );
  return {
    home,
    async run(text: string): Promise<{ stdout: string; stderr: string }> {
      try {
        return await this.exec(text);
      } catch (error) {
        const e = error as { code: number; stdout: string; stderr: string };
        throw new Error(`exit ${e.code} from:\n${text}\nstdout:\n${e.stdout}\nstderr:\n${e.stderr}`);
      }
    },
    exec(text: string): Promise<{ stdout: string; stderr: string }> {
      const script = `set -e\ncd "$(cat '${home}/.cwd')"\n. '${state}'\n${text}\npwd > '${home}/.cwd'\nexport -p > '${state}'\n`;
      return execFileAsync('bash', ['-c', script], {
        cwd: home,
        env: {
          PATH: [keelPath, path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter),
          HOME: home,
          GIT_CONFIG_NOSYSTEM: '1',
        },
        maxBuffer: 64 * 1024 * 1024,
      });
    },
    cwd: () => readFileSync(path.join(home, '.cwd'), 'utf8').trim(),
  };
}

async function keelOnPath() {
  const dir = await tempDir('keel-bin-');
  symlinkSync(new URL('../bin/keel.js', import.meta.url).pathname, path.join(dir, 'keel'));
  return dir;
}

/** The names of the tools a request offers, in either protocol. */
const offered = (call: ScriptedChatCall): string[] =>
  (call.body.tools ?? []).map(
    (t: { name?: string; function?: { name: string } }) => t.function?.name ?? t.name,
  );

/** Tool results in the conversation so far, as text, in either protocol. */
function toolResults(call: ScriptedChatCall): string[] {
  const messages = call.body.messages as Array<{ role: string; content: unknown }>;
  if (call.protocol === 'openai')
    return messages.filter((m) => m.role === 'tool').map((m) => JSON.stringify(m.content));
  return messages.flatMap((m) =>
    Array.isArray(m.content)
      ? m.content
          .filter((c: { type: string }) => c.type === 'tool_result')
          .map((c: unknown) => JSON.stringify(c))
      : [],
  );
}

/** A model that does the guide's task: plans, edits greet.js, commits, hands in the change, approves it. */
function greetModel(call: ScriptedChatCall): ScriptedReply {
  const tools = offered(call);
  const results = toolResults(call);
  const tool = (name: string, args: unknown): ScriptedReply => ({ toolCalls: [{ name, arguments: args }] });
  if (tools.includes('submit_plan'))
    return tool('submit_plan', {
      version: 'plan.v1',
      summary: "Make greet() return 'Hello, NAME!'.",
      steps: [{ id: 's1', description: 'Add the comma and the exclamation mark', files: ['greet.js'] }],
      acceptance: ['test/greet.test.js passes'],
    });
  if (tools.includes('submit_review'))
    return tool('submit_review', {
      version: 'review.v1',
      verdict: 'approve',
      summary: 'Right.',
      comments: [],
    });
  if (tools.includes('submit_change')) {
    switch (results.length) {
      case 0:
        return tool('edit_file', {
          path: 'greet.js',
          edits: [{ oldText: "return 'Hello ' + name;", newText: 'return `Hello, ${name}!`;' }],
        });
      case 1:
        return tool('git_add', { paths: ['greet.js'] });
      case 2:
        return tool('git_commit', { message: 'greet: a comma and an exclamation mark' });
      default: {
        const sha = /[0-9a-f]{40}/.exec(results.at(-1)!)?.[0];
        return tool('submit_change', {
          version: 'change.v1',
          summary: "greet() returns 'Hello, NAME!'",
          files: [{ path: 'greet.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
          commit: { sha, message: 'greet: a comma and an exclamation mark' },
        });
      }
    }
  }
  return {
    status: 400,
    error: { message: `the guide's model does not know this agent: ${tools.join(', ')}` },
  };
}

/** Whether `actual` holds everything `documented` says (objects by key, recursively; the rest equal). */
function holds(documented: unknown, actual: unknown): boolean {
  if (documented !== null && typeof documented === 'object' && !Array.isArray(documented))
    return (
      actual !== null &&
      typeof actual === 'object' &&
      Object.entries(documented).every(([k, v]) => holds(v, (actual as Record<string, unknown>)[k]))
    );
  return JSON.stringify(documented) === JSON.stringify(actual);
}

/** The config keel init wrote holds the guide's snippet: the same models, prices and agents' model. */
function expectSnippetIn(configFile: string, snippet: string) {
  const config = parse(readFileSync(configFile, 'utf8'));
  const documented = parse(snippet) as Record<string, unknown>;
  expect(Object.keys(documented).length).toBeGreaterThan(0);
  expect({ snippet, holds: holds(documented, config) }).toEqual({ snippet, holds: true });
  // The model the snippet names is the one every agent uses.
  const [key] = Object.keys(documented['models'] as object);
  expect(Object.values(config.agents).map((a) => (a as { model: string }).model)).toEqual(Array(3).fill(key));
}

/** Points the config's models at the scripted server (what the guide says for a server elsewhere). */
function redirect(configFile: string, server: ScriptedChatServer) {
  const config = parse(readFileSync(configFile, 'utf8'));
  for (const model of Object.values(config.models) as Array<{ baseURL?: string; provider: string }>)
    if (model.provider !== 'playbook') model.baseURL = server.url;
  writeFileSync(configFile, stringify(config));
}

/**
 * A documented request shape against a recorded body: `"<…>"` stands for any value, an object
 * must have exactly the documented keys, a one-element array describes every element.
 */
function matchShape(documented: unknown, actual: unknown, where = '$'): string[] {
  if (typeof documented === 'string' && /^<.*>$/.test(documented))
    return actual === undefined ? [`${where}: missing`] : [];
  if (Array.isArray(documented)) {
    if (!Array.isArray(actual)) return [`${where}: not an array`];
    if (documented.length === 1)
      return actual.flatMap((a, i) => matchShape(documented[0], a, `${where}[${i}]`));
    if (documented.length !== actual.length)
      return [`${where}: ${actual.length} elements, documented ${documented.length}`];
    return documented.flatMap((d, i) => matchShape(d, actual[i], `${where}[${i}]`));
  }
  if (documented !== null && typeof documented === 'object') {
    if (actual === null || typeof actual !== 'object') return [`${where}: not an object`];
    // A key documented as `<optional: …>` may be absent (a cache mark only some elements carry).
    const optional = (k: string) => {
      const value = (documented as Record<string, unknown>)[k];
      return typeof value === 'string' && value.startsWith('<optional') && !(k in actual);
    };
    const keys = Object.keys(documented)
      .filter((k) => !optional(k))
      .sort();
    const got = Object.keys(actual).sort();
    if (keys.join() !== got.join())
      return [`${where}: keys ${got.join(', ')}, documented ${keys.join(', ')}`];
    return keys.flatMap((k) =>
      matchShape(
        (documented as Record<string, unknown>)[k],
        (actual as Record<string, unknown>)[k],
        `${where}.${k}`,
      ),
    );
  }
  return Object.is(documented, actual)
    ? []
    : [`${where}: ${JSON.stringify(actual)}, documented ${JSON.stringify(documented)}`];
}

/** The guide's path with one model: project, init, config snippet, task file, run. */
async function followGuide(model: 'ollama' | 'openai' | 'anthropic') {
  const server = await startScriptedChatServer({ script: greetModel });
  onTestFinished(() => server.close());
  const sh = await shell(await keelOnPath());
  await sh.run(block('sh', 'project').text);
  const project = sh.cwd();
  expect(path.basename(project)).toBe('greet');
  // The walk-through's own init (ollama), then the model's alternative when it has one.
  await sh.run(block('sh', 'init', 'ollama').text);
  if (model !== 'ollama') await sh.run(block('sh', 'init', model).text);
  const configFile = path.join(project, 'keel.config.yaml');
  expectSnippetIn(configFile, block('yaml', 'config', model).text);
  redirect(configFile, server);
  const task = block('yaml', 'file');
  writeFileSync(path.join(project, task.tags[1]!), task.text);
  const run = await sh.run(block('sh', 'run').text);
  return { server, project, run };
}

describe('docs/first-task.md, followed as written', () => {
  it('with a local OpenAI-compatible server (Ollama): no key sent, the task fixes the test and commits', async () => {
    const { server, run } = await followGuide('ollama');
    const lines = run.stdout.split('\n');
    expect(lines.slice(1, 3)).toEqual([
      'status    succeeded',
      'outcome   1 coding round(s), tests passed (1/1), no deploy',
    ]);
    // git log --oneline: the agent's commit on top of the guide's.
    expect(lines.filter((l) => / greet/.test(l)).map((l) => l.replace(/^[0-9a-f]+ /, ''))).toEqual([
      'greet: a comma and an exclamation mark',
      'greet, and a test it fails',
    ]);
    const [first] = server.requests;
    expect([first!.method, first!.path, first!.headers['authorization']]).toEqual([
      'POST',
      '/v1/chat/completions',
      undefined,
    ]);
    expect(first!.body.model).toBe('qwen2.5-coder:7b');
    expect(matchShape(JSON.parse(block('json', 'request', 'openai').text), first!.body)).toEqual([]);
    expect(first!.body.tools.map((t: { function: { name: string } }) => t.function.name).at(-1)).toBe(
      'submit_plan',
    );
  }, 300_000);

  it('with OpenAI: the key from OPENAI_API_KEY goes out as a bearer token', async () => {
    const { server, run } = await followGuide('openai');
    expect(run.stdout.split('\n')[1]).toBe('status    succeeded');
    const [first] = server.requests;
    expect([first!.path, first!.headers['authorization'], first!.body.model]).toEqual([
      '/v1/chat/completions',
      'Bearer sk-your-key',
      'gpt-4.1-mini',
    ]);
    expect(matchShape(JSON.parse(block('json', 'request', 'openai').text), first!.body)).toEqual([]);
  }, 300_000);

  it('with Anthropic: the messages API with its key and version headers', async () => {
    const { server, run } = await followGuide('anthropic');
    expect(run.stdout.split('\n')[1]).toBe('status    succeeded');
    const [first] = server.requests;
    expect([
      first!.path,
      first!.headers['x-api-key'],
      first!.headers['anthropic-version'],
      first!.body.model,
    ]).toEqual(['/v1/messages', 'sk-ant-your-key', '2023-06-01', 'claude-sonnet-4-5']);
    expect(matchShape(JSON.parse(block('json', 'request', 'anthropic').text), first!.body)).toEqual([]);
    expect(guide).toContain('`x-api-key` and\n`anthropic-version: 2023-06-01`');
  }, 300_000);

  it('llama.cpp and vLLM: the snippet is what keel init --model writes, and the example task runs with it', async () => {
    for (const model of ['llama.cpp', 'vllm']) {
      const server = await startScriptedChatServer({ script: greetModel });
      onTestFinished(() => server.close());
      const sh = await shell(await keelOnPath());
      await sh.run(block('sh', 'project').text);
      await sh.run(`keel init --model ${model}`);
      const configFile = path.join(sh.cwd(), 'keel.config.yaml');
      expectSnippetIn(configFile, block('yaml', 'config', model).text);
      redirect(configFile, server);
      const run = await sh.run('keel run task.example.yaml --quiet');
      expect([model, run.stdout.split('\n')[1]]).toEqual([model, 'status    succeeded']);
      expect(server.requests[0]!.headers['authorization']).toBeUndefined();
    }
  }, 300_000);

  it('the limits table holds the defaults, and the worked example is what the budget reserves', () => {
    for (const [name, value] of Object.entries(defaultLimits))
      expect(guide).toMatch(new RegExp(`^\\| \`${name}\` +\\| ${value} +\\|`, 'm'));
    expect(guide.match(/^\| `\w+` +\|/gm)).toHaveLength(Object.keys(defaultLimits).length);
    const clock = { now: () => 0 };
    const reserve = new Budget(defaultLimits, clock).reserveModelCall(8000, 8192, {
      inputPerMTok: 0.4,
      outputPerMTok: 1.6,
    });
    expect(reserve).toEqual({
      ok: true,
      reservation: { inputTokens: 8000, maxTokens: 8192, costUsd: 0.0163072 },
    });
    expect(guide.replace(/\s+/g, ' ')).toContain(
      "A coding step whose request counts 8000 tokens, with the coding agent's `maxTokens` of 8192, reserves 16192 tokens and, at gpt-4.1-mini's prices ($0.40 and $1.60 per million), $0.0163072 before it is sent",
    );
  });
});
