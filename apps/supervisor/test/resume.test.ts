import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import type { ChatScript, ScriptedReply, ScriptedToolCall } from '@keel/testing/chat-server';
import { git } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { createModel } from '../src/models/index.js';
import type { Model } from '../src/models/model.js';
import { parseTaskFile } from '../src/task/taskFile.js';
import { createHarness, readTools, writeTools, type Harness } from './helpers.js';
import { finalContracts } from './obedient.js';
import { crash, reapAfter, startKeel, until } from './processes.js';
import { serve } from './scripted.js';

/** Seeded, so a failing kill point can be run again exactly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const call = (name: string, args: unknown): ScriptedReply => ({ toolCalls: [{ name, arguments: args }] });

const codingTurns: ScriptedToolCall[] = [
  {
    name: 'edit_file',
    arguments: { path: 'app/math.js', edits: [{ oldText: 'return a - b;', newText: 'return a + b;' }] },
  },
  { name: 'git_add', arguments: { paths: ['app/math.js'] } },
  { name: 'git_commit', arguments: { message: 'Fix add(): it subtracted its arguments' } },
  { name: 'write_file', arguments: { path: 'NOTES.md', content: 'add() sums its arguments now.\n' } },
  { name: 'git_add', arguments: { paths: ['NOTES.md'] } },
  { name: 'git_commit', arguments: { message: 'Notes on the add() fix' } },
];

/**
 * The model, over the OpenAI-compatible wire: like the playbook it keeps no state — the agent is
 * read off its final tool, the turn off the assistant messages so far — so a resumed task that
 * asks it again gets the same answer, and every request it gets can be counted.
 */
const script: ChatScript = ({ body }) => {
  const messages = body.messages as Array<{ role: string; content?: string | null }>;
  const finalTool = (body.tools as Array<{ function: { name: string } }>)
    .map((t) => t.function.name)
    .find((name) => name.startsWith('submit_'))!;
  const turn = messages.filter((m) => m.role === 'assistant').length;
  const results = messages.filter((m) => m.role === 'tool').map((m) => m.content ?? '');
  switch (finalTool) {
    case 'submit_plan':
      return turn === 0
        ? call('read_file', { path: 'app/math.js' })
        : call(finalTool, finalContracts[finalTool]);
    case 'submit_change': {
      const next = codingTurns[turn];
      if (next !== undefined) return { toolCalls: [next] };
      return call(finalTool, {
        version: 'change.v1',
        summary: 'add() returns the sum; a note says so',
        files: [
          { path: 'app/math.js', status: 'modified', linesAdded: 1, linesRemoved: 1 },
          { path: 'NOTES.md', status: 'added', linesAdded: 1, linesRemoved: 0 },
        ],
        commit: null,
      });
    }
    case 'submit_review':
      return call(finalTool, finalContracts[finalTool]);
    default: {
      const plan = results.map((r) => /plan (\S+) for staging: release (\S+) over/.exec(r)).findLast(Boolean);
      if (turn === 0) return call('plan_deploy', { environment: 'staging' });
      if (turn === 1) return call('apply_deploy', { planId: plan![1] });
      return call(finalTool, {
        version: 'deploy.v1',
        environment: 'staging',
        status: 'live',
        releaseId: plan![2],
        planId: plan![1],
      });
    }
  }
};

const taskFile = {
  type: 'bugfix',
  title: 'Fix add() and deploy to staging',
  description: 'add() subtracts. Fix it, note the fix, and deploy to staging.',
  mode: 'orchestrated',
  tests: {},
  deploy: { environment: 'staging' },
};

/** A project with a bug and a test, a staging environment without approval, the four servers, the scripted model. */
async function world(): Promise<{ h: Harness; server: Awaited<ReturnType<typeof serve>> }> {
  const server = await serve(script);
  const h = await createHarness({
    files: {
      'app/math.js': '/** Sum of two numbers. */\nexport function add(a, b) {\n  return a - b;\n}\n',
      'test/math.test.js':
        "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { add } from '../app/math.js';\n\ntest('add sums', () => {\n  assert.equal(add(2, 3), 5);\n});\n",
      'package.json': `${JSON.stringify({ name: 'app', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
      'keel.deploy.yaml':
        'environments:\n  staging:\n    build: app\n    target: { type: directory, path: ../deploys/staging }\n',
    },
    config: {
      servers: {
        filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
        git: { builtin: 'git', args: ['--root', '.'] },
        tests: { builtin: 'test-runner', args: ['--root', '.'] },
        deploy: { builtin: 'deploy', args: ['--root', '.', '--config', 'keel.deploy.yaml'] },
      },
      models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: server.url } },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: {
        planning: { model: 'gpt', tools: { filesystem: readTools } },
        coding: {
          model: 'gpt',
          tools: { filesystem: writeTools, git: ['git_status', 'git_add', 'git_commit'] },
        },
        review: { model: 'gpt', tools: { filesystem: readTools } },
        deploy: { model: 'gpt', tools: { deploy: ['plan_deploy', 'apply_deploy'] } },
      },
    },
  });
  reapAfter(h.dir);
  await writeFile(path.join(h.dir, 'task.yaml'), stringify(taskFile));
  return { h, server };
}

/**
 * Rows of the audit log the four servers share: what reached them, with each call's idempotency
 * key. The dry runs the harness makes to compute an edit's effect before it runs change nothing and
 * are left out.
 */
function audited(
  h: Harness,
): Array<{ tool: string; outcome: string; key: string | null; errorCode: string | null }> {
  const db = new Database(path.join(h.loaded.stateDir, 'servers', 'keel.db'), { readonly: true });
  try {
    return db
      .prepare(
        "SELECT tool, outcome, idempotency_key AS key, error_code AS errorCode FROM audit_log WHERE json_extract(args, '$.dryRun') IS NOT 1 ORDER BY seq",
      )
      .all() as Array<{ tool: string; outcome: string; key: string | null; errorCode: string | null }>;
  } finally {
    db.close();
  }
}

const expectedSteps = 13;

/** What a finished task must show, however many times it crashed: every effect exactly once. */
async function expectDoneOnce(h: Harness, taskId: string): Promise<void> {
  const task = await h.store.getTask(taskId);
  expect([task?.status, task?.run?.steps, task?.run?.outcome.message]).toEqual([
    'succeeded',
    expectedSteps,
    expect.stringMatching(/^1 coding round\(s\), tests passed \(1\/1\), staging live \(staging-[0-9a-f]+\)$/),
  ]);
  // No duplicate commit.
  expect((await git(h.repo.dir, ['log', '--format=%s'])).trim().split('\n')).toEqual([
    'Notes on the add() fix',
    'Fix add(): it subtracted its arguments',
    'initial',
  ]);
  // Exactly one release, and it is live.
  const deploys = path.join(h.dir, 'deploys', 'staging');
  const releases = readdirSync(path.join(deploys, 'releases'));
  expect(releases).toHaveLength(1);
  expect(readFileSync(path.join(deploys, 'current', 'math.js'), 'utf8')).toContain('return a + b;');
  // Every effect happened once: no idempotency key succeeded twice, and each mutating call ran once
  // (a repeated one, if any, was answered as a replay).
  const rows = audited(h);
  const ok = rows.filter((r) => r.outcome === 'ok');
  expect(new Set(ok.map((r) => r.key)).size).toBe(ok.length);
  const done = (tool: string) => ok.filter((r) => r.tool === tool).length;
  expect(['edit_file', 'write_file', 'git_add', 'git_commit', 'apply_deploy', 'run_tests'].map(done)).toEqual(
    [1, 1, 2, 2, 1, 1],
  );
  // A call the crash cut short is audited as cancelled by its server, and made again on resume.
  expect(
    rows.filter((r) => r.outcome !== 'ok' && r.outcome !== 'replayed' && r.errorCode !== 'CANCELLED'),
  ).toEqual([]);
  // The record has each call slot once, all answered.
  const calls = await h.store.listToolCalls(taskId);
  expect(calls.map((c) => `${c.tool}:${c.outcome}`)).toEqual([
    'detect_projects:ok',
    'read_file:ok',
    ...codingTurns.map((t) => `${t.name}:ok`),
    'run_tests:ok',
    'plan_deploy:ok',
    'apply_deploy:ok',
  ]);
  const models = await h.store.listModelCalls(taskId);
  expect(models.filter((m) => m.reply !== null).map((m) => m.step)).toEqual(
    Array.from({ length: expectedSteps }, (_, i) => i + 1),
  );
}

/** Model calls recorded with their answer so far. */
const answered = async (h: Harness, taskId: string) =>
  (await h.store.listModelCalls(taskId)).filter((m) => m.reply !== null).length;

let baseline: Promise<number> | undefined;
/** An uninterrupted `keel run` of the same task: how many progress lines it writes (the kill points lie among them). */
function progressLines(): Promise<number> {
  baseline ??= (async () => {
    const { h, server } = await world();
    const p = startKeel(['run', 'task.yaml'], h.dir);
    expect(await p.exited).toEqual({ code: 0, signal: null });
    const [task] = await h.store.listTasks();
    await expectDoneOnce(h, task!.id);
    expect(server.requests.length).toBe(expectedSteps);
    return p.stderrLines().length;
  })();
  return baseline;
}

const random = mulberry32(20261130);
/** Kill points: a fraction of the progress lines, drawn once from the seed. */
const points = [random(), random(), random(), [random(), random()]] as const;

describe('kill -9 of the supervisor, then keel resume', () => {
  it('an uninterrupted run makes each commit, release and write once', async () => {
    expect(await progressLines()).toBeGreaterThan(expectedSteps);
  }, 180_000);

  for (const point of points) {
    const fractions = Array.isArray(point) ? point : [point];
    it(`killed after ${fractions.map((f) => `${(f * 100).toFixed(0)}%`).join(' then ')} of its progress lines, resumed: every effect once, no recorded model call asked again`, async () => {
      const lines = await progressLines();
      const { h, server } = await world();
      let taskId: string | undefined;
      let recorded = 0;
      let args = ['run', 'task.yaml'];
      for (const fraction of fractions) {
        // Past the first line the task is in the store; short of the last, it has not ended.
        const after = 1 + Math.floor(fraction * (lines - 2));
        const before = server.requests.length;
        const p = startKeel(args, h.dir);
        await until(`${after} progress lines`, () => (p.stderrLines().length >= after ? true : undefined));
        await crash(p, h.dir);
        expect(await p.exited).toEqual({ code: null, signal: 'SIGKILL' });
        taskId ??= (await h.store.listTasks())[0]!.id;
        expect((await h.store.getTask(taskId))?.status).toBe('running');
        const now = await answered(h, taskId);
        // This run asked only for steps not recorded before it, plus at most the one in flight at the kill.
        expect(server.requests.length - before).toBeLessThanOrEqual(now - recorded + 1);
        recorded = now;
        args = ['resume', taskId];
      }
      const before = server.requests.length;
      const resumed = startKeel(['resume', taskId!, '--quiet'], h.dir);
      expect(await resumed.exited).toEqual({ code: 0, signal: null });
      expect(resumed.stderr()).toBe('');
      // The last run asked exactly the steps that had no recorded answer: none recorded was asked again.
      expect(server.requests.length - before).toBe(expectedSteps - recorded);
      await expectDoneOnce(h, taskId!);
      const events = await h.store.listEvents(taskId!);
      expect(events.filter((e) => e.type === 'task_resumed').length).toBe(fractions.length);
      expect(
        events.filter((e) => e.type === 'task_finished').map((e) => (e.data as { status: string }).status),
      ).toEqual(['succeeded']);
    }, 300_000);
  }
});

/** Counts generate() calls per step; throws at `crashAt` (a crash inside the model call). */
function counting(inner: Model, crashAt?: number): { model: Model; steps: number[] } {
  const steps: number[] = [];
  return {
    steps,
    model: {
      provider: inner.provider,
      model: inner.model,
      async generate(request, context) {
        steps.push(context.step);
        if (context.step === crashAt) throw new Error(`crashed at step ${crashAt}`);
        return inner.generate(request, context);
      },
    },
  };
}

describe('resumeTask in-process, counting model calls', () => {
  for (const crashAt of [2, 8, 12])
    it(`a task that crashed inside model call ${crashAt} resumes asking only from step ${crashAt} on`, async () => {
      const { h, server } = await world();
      const make = () => createModel('gpt', h.loaded.config.models['gpt']!, { env: {}, playbook: undefined });
      const first = counting(make(), crashAt);
      const { run } = await runTask({
        loaded: h.loaded,
        store: h.store,
        env: {},
        task: parseTaskFile(taskFile, 'task.yaml'),
        models: { gpt: first.model },
      });
      expect([run.status, run.outcome.message]).toEqual([
        'error',
        `model call failed (openai-compatible:test-model): crashed at step ${crashAt}`,
      ]);
      expect(first.steps).toEqual(Array.from({ length: crashAt }, (_, i) => i + 1));
      expect(server.requests.length).toBe(crashAt - 1);

      const second = counting(make());
      const resumed = await resumeTask({
        loaded: h.loaded,
        store: h.store,
        env: {},
        taskId: run.id,
        reason: 'test',
        models: { gpt: second.model },
      });
      expect(resumed.run.status).toBe('succeeded');
      // Steps 1..crashAt-1 were answered from their records; the crashed one and those after were asked, once each.
      expect(second.steps).toEqual(
        Array.from({ length: expectedSteps - crashAt + 1 }, (_, i) => crashAt + i),
      );
      expect(server.requests.length).toBe(expectedSteps);
      await expectDoneOnce(h, run.id);
    }, 120_000);
});
