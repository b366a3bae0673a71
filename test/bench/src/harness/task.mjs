// The one task every contender runs: a 12-step fix of a small Node project through Keel's
// filesystem, git and test-runner servers, the model's side scripted; and the check that a
// contender made exactly the scripted calls and got the results those calls give.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

export const commitSubject = 'Fix add: return the sum';

/** What the contenders are asked; Keel's own prompt wraps it, the peers get it as their input. */
export const instructions =
  'src/math.js has a bug that makes its test fail. Find it, fix it, run the tests, and commit the fix.';

/**
 * The scripted calls, in order, with what each result must show the model: the result text a
 * contender passes back has to match, so a call that failed or never reached its server fails the row.
 */
export const steps = [
  { name: 'list_directory', args: { path: '.' }, expect: /package\.json/ },
  { name: 'read_file', args: { path: 'src/math.js' }, expect: /return a - b;/ },
  { name: 'search_text', args: { pattern: 'add(', literal: true }, expect: /test\/math\.test\.js/ },
  { name: 'read_file', args: { path: 'test/math.test.js' }, expect: /add\(2, 3\)/ },
  {
    name: 'edit_file',
    args: { path: 'src/math.js', edits: [{ oldText: 'return a - b;', newText: 'return a + b;' }] },
    expect: /\+ {2}return a \+ b;/,
  },
  { name: 'run_tests', args: { fresh: true }, expect: /passed/ },
  { name: 'git_status', args: {}, expect: /src\/math\.js/ },
  { name: 'git_diff', args: {}, expect: /\+ {2}return a \+ b;/ },
  { name: 'git_add', args: { paths: ['src/math.js'] }, expect: /src\/math\.js/ },
  { name: 'git_commit', args: { message: commitSubject }, expect: /\[main [0-9a-f]{7,40}\] Fix add/ },
  { name: 'git_log', args: { limit: 3 }, expect: new RegExp(commitSubject) },
  { name: 'list_directory', args: { path: 'src' }, expect: /math\.js/ },
];

/** Model calls per task: one per step, and the one that ends the task. */
export const modelCalls = steps.length + 1;

const files = {
  'package.json': `${JSON.stringify(
    { name: 'bench-math', private: true, type: 'module', scripts: { test: 'node --test' } },
    null,
    2,
  )}\n`,
  'README.md': '# bench-math\n\nA tiny library with a test.\n',
  'src/math.js': 'export function add(a, b) {\n  return a - b;\n}\n',
  'test/math.test.js':
    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { add } from '../src/math.js';\n\ntest('add', () => {\n  assert.equal(add(2, 3), 5);\n});\n",
};

const git = (dir, ...args) =>
  execFileSync('git', args, {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' },
  }).trim();

/** A git repository holding the project at its starting commit. */
export function createWorkspace(dir) {
  mkdirSync(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), content);
  }
  git(dir, 'init', '-q', '-b', 'main');
  for (const [key, value] of Object.entries({
    'gc.auto': '0',
    'commit.gpgsign': 'false',
    'core.hooksPath': '/dev/null',
    'user.name': 'Keel Bench',
    'user.email': 'bench@keel.invalid',
  }))
    git(dir, 'config', key, value);
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'start');
  return { dir, start: git(dir, 'rev-parse', 'HEAD') };
}

/** Back to the starting commit with nothing else in the tree, between tasks (never timed). */
export function resetWorkspace(workspace) {
  git(workspace.dir, 'reset', '-q', '--hard', workspace.start);
  git(workspace.dir, 'clean', '-q', '-fdx');
}

/** What a finished task must have left: the fix committed on top of the start, a clean tree. */
export function checkWorkspace(workspace) {
  const problems = [];
  const subject = git(workspace.dir, 'log', '-1', '--format=%s');
  if (subject !== commitSubject) problems.push(`HEAD is '${subject}', not the scripted commit`);
  else if (git(workspace.dir, 'rev-parse', 'HEAD~1') !== workspace.start)
    problems.push('the commit is not on top of the starting commit');
  if (!readFileSync(path.join(workspace.dir, 'src/math.js'), 'utf8').includes('return a + b;'))
    problems.push('src/math.js is not fixed');
  const status = git(workspace.dir, 'status', '--porcelain');
  if (status !== '') problems.push(`the tree is not clean: ${status}`);
  return problems;
}

/** The text a chat-completions message carries, whether a string or a list of parts. */
function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((part) => (typeof part === 'string' ? part : (part?.text ?? ''))).join('\n');
  return '';
}

/**
 * Whether one task's requests to the scripted model are exactly the scripted conversation: 13
 * requests; request k carries the system/user opening and then exactly the k scripted calls, each
 * with the id the model gave it, its arguments as scripted, and its result as that call gives it;
 * every request offers the scripted tools. Returns the problems found (none: the contender passed).
 */
export function checkConversation(requests) {
  const problems = [];
  if (requests.length !== modelCalls)
    problems.push(`${requests.length} model requests, the script has ${modelCalls}`);
  const wantedTools = [...new Set(steps.map((s) => s.name))];
  requests.slice(0, modelCalls).forEach((request, k) => {
    const where = `request ${k + 1}`;
    if (request.protocol !== 'openai' || request.response?.status !== 200) {
      problems.push(`${where}: ${request.method} ${request.path} answered ${request.response?.status}`);
      return;
    }
    const offered = new Set((request.body.tools ?? []).map((t) => t.function?.name));
    const missing = wantedTools.filter((name) => !offered.has(name));
    if (missing.length > 0) problems.push(`${where}: tools not offered: ${missing.join(', ')}`);
    const messages = request.body.messages ?? [];
    let at = 0;
    while (at < messages.length && ['system', 'developer'].includes(messages[at].role)) at++;
    if (messages[at]?.role !== 'user' || !textOf(messages[at].content).includes(instructions))
      problems.push(`${where}: message ${at} is not the task's user message`);
    at++;
    const rest = messages.slice(at);
    if (rest.length !== 2 * k) {
      problems.push(`${where}: ${rest.length} messages after the opening, expected ${2 * k}`);
      return;
    }
    for (let i = 0; i < k; i++) {
      const assistant = rest[2 * i];
      const tool = rest[2 * i + 1];
      const sent = requests[i].response?.body?.choices?.[0]?.message?.tool_calls?.[0];
      const calls = assistant.tool_calls ?? [];
      if (assistant.role !== 'assistant' || calls.length !== 1) {
        problems.push(`${where}: message ${at + 2 * i} is not the assistant's one call of step ${i + 1}`);
        continue;
      }
      const [call] = calls;
      let args;
      try {
        args = JSON.parse(call.function.arguments);
      } catch {
        args = call.function.arguments;
      }
      if (call.function.name !== steps[i].name || !isDeepStrictEqual(args, steps[i].args))
        problems.push(
          `${where}: step ${i + 1} went back as ${call.function.name}(${JSON.stringify(args)}), scripted ${steps[i].name}(${JSON.stringify(steps[i].args)})`,
        );
      if (call.id !== sent?.id)
        problems.push(`${where}: step ${i + 1}'s call id ${call.id}, the model sent ${sent?.id}`);
      if (tool.role !== 'tool' || tool.tool_call_id !== call.id)
        problems.push(`${where}: step ${i + 1} has no tool result for ${call.id}`);
      else if (!steps[i].expect.test(textOf(tool.content)))
        problems.push(
          `${where}: step ${i + 1} (${steps[i].name}) result does not show ${steps[i].expect}: ${textOf(tool.content).slice(0, 300)}`,
        );
    }
  });
  return problems;
}
