// Tier B: `keel run` killed -9 (at a seeded random moment, with the servers it started, as a
// machine crash would; or at a supervisor crash point, where keel kills itself), then `keel resume`
// — itself killed again a few times — until a clean resume finishes the task. Invariants after
// every death: nothing left running; no model call whose reply was recorded is asked again
// (the scripted model server sees every request, tagged with its lane); and at the end: the task
// succeeded, each intended commit exactly once, the files written, `keel audit verify` and the
// servers' `audit verify` ok.
import { execFile as execFileCb, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { bins } from './tierA.mjs';
import { killAll, leftoverIn } from './procs.mjs';
import { initRepo } from './repo.mjs';

const execFile = promisify(execFileCb);
const repoRoot = new URL('../../../', import.meta.url).pathname;
export const keelBin = path.join(repoRoot, 'apps/supervisor/dist/bin.js');

export const tierBPoints = [
  'random',
  'supervisor.after-claim',
  'supervisor.after-model-recorded',
  'supervisor.after-tool-recorded',
];

/** The coding agent's turns; then it submits. Two commits, two files. */
const turns = [
  { name: 'write_file', arguments: { path: 'a.txt', content: 'alpha\n' } },
  { name: 'git_add', arguments: { paths: ['a.txt'] } },
  { name: 'git_commit', arguments: { message: 'chaos one' } },
  { name: 'write_file', arguments: { path: 'b.txt', content: 'beta\n' } },
  { name: 'git_add', arguments: { paths: ['b.txt'] } },
  { name: 'git_commit', arguments: { message: 'chaos two' } },
];
export const expectedSteps = turns.length + 1;
const submit = {
  version: 'change.v1',
  summary: 'two files, two commits',
  files: [
    { path: 'a.txt', status: 'added', linesAdded: 1, linesRemoved: 0 },
    { path: 'b.txt', status: 'added', linesAdded: 1, linesRemoved: 0 },
  ],
  commit: null,
};

/** The lane a request came from: the task's description names it. */
export const laneOf = (body) => {
  for (const m of body.messages ?? []) {
    const text = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
    const found = /chaos-lane-(\S+?)-task/.exec(text);
    if (found !== null) return found[1];
  }
  return undefined;
};
/** The step a request asks for: one more than the assistant turns it carries. */
export const stepOf = (body) => (body.messages ?? []).filter((m) => m.role === 'assistant').length + 1;

/** Stateless, like a model: the answer depends only on the conversation so far. */
export const script = ({ body }) => {
  const turn = stepOf(body) - 1;
  const next = turns[turn];
  if (next !== undefined) return { toolCalls: [next] };
  return { toolCalls: [{ name: 'submit_change', arguments: submit }] };
};

const writeTools = ['read_file', 'write_file', 'edit_file', 'create_directory'];
const readTools = ['read_file', 'list_directory'];

/**
 * A fresh task world: a git workspace, a config naming the scripted model, a task file. With
 * `stepLimit`, the task's steps are limited to it and the limit escalates to a person (who may
 * raise it) instead of ending the task.
 */
export async function createTaskWorld(dir, laneId, modelUrl, { stepLimit } = {}) {
  const ws = path.join(dir, 'ws');
  mkdirSync(ws, { recursive: true });
  writeFileSync(path.join(ws, 'README.md'), '# ws\n');
  await initRepo(ws);
  const gpt = { model: 'gpt', tools: { filesystem: readTools } };
  writeFileSync(
    path.join(dir, 'keel.config.yaml'),
    stringify({
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: {
        filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
        git: { builtin: 'git', args: ['--root', '.'] },
      },
      models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: modelUrl } },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: {
        planning: gpt,
        coding: {
          model: 'gpt',
          tools: { filesystem: writeTools, git: ['git_status', 'git_add', 'git_commit'] },
        },
        review: gpt,
      },
      ...(stepLimit === undefined ? {} : { escalateLimits: ['steps'] }),
    }),
  );
  writeFileSync(
    path.join(dir, 'task.yaml'),
    stringify({
      type: 'chaos',
      title: 'two commits',
      description: `chaos-lane-${laneId}-task: write a.txt and b.txt, committing each.`,
      mode: 'single',
      tests: null,
      deploy: null,
      ...(stepLimit === undefined ? {} : { limits: { steps: stepLimit } }),
    }),
  );
  return { dir, ws, state: path.join(dir, 'state') };
}

export function startKeel(args, cwd, env = {}) {
  const child = spawn(process.execPath, [keelBin, ...args], {
    cwd,
    env: { ...process.env, KEEL_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c.toString()));
  child.stderr.on('data', (c) => (stderr += c.toString()));
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { pid: child.pid, exited, stderr: () => stderr, stdout: () => stdout };
}

/** Direct children of `pid` (the servers keel started). */
export function childrenOf(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // Gone.
    }
  }
  return out;
}

export function readTask(world) {
  let db;
  try {
    db = new Database(path.join(world.state, 'tasks.db'), { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const task = db.prepare('SELECT id, status FROM tasks').get();
    if (task === undefined) return undefined;
    const answered = db
      .prepare('SELECT step FROM model_calls WHERE task_id = ? AND reply IS NOT NULL ORDER BY step')
      .all(task.id)
      .map((r) => r.step);
    return { ...task, answered };
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

/**
 * One task through `deaths` kills (each at the point `pickPoint()` deals) and a final clean resume. `record(point, violation?)` is told of
 * each death (and of each violation, with the point it followed). Returns the segments' wall time.
 */
export async function runTaskB({ world, laneId, chat, random, pickPoint, deaths, randomWindowMs, record }) {
  let segments = 0;
  let lastPoint = 'final';
  const violation = (point, what) => record(point, what);
  for (let i = 0; i < deaths; i++) {
    const before = readTask(world);
    if (before?.status === 'succeeded') break;
    const point = pickPoint();
    const args = before === undefined ? ['run', 'task.yaml', '--quiet'] : ['resume', before.id, '--quiet'];
    const asked = chat.requests.length;
    const p = startKeel(args, world.dir, point === 'random' ? {} : { KEEL_CRASH_AT: point });
    segments++;
    let exit;
    if (point === 'random') {
      const delay = random.next() * randomWindowMs;
      const timer = new Promise((resolve) => setTimeout(() => resolve(undefined), delay));
      exit = await Promise.race([p.exited, timer]);
      if (exit === undefined) {
        // A machine crash: keel and the servers it started go at once.
        const servers = childrenOf(p.pid);
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
        for (const pid of servers)
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        exit = await p.exited;
      }
    } else exit = await p.exited;
    lastPoint = point;
    if (exit.signal !== 'SIGKILL') {
      // It ended first (a random kill too late, or a point not reached): no death this time.
      if (exit.code !== 0)
        violation(
          point,
          `keel ${args[0]} exited ${exit.code} instead of dying or finishing: ${p.stderr().slice(-400)}`,
        );
      continue;
    }
    if (point !== 'random' && !p.stderr().includes(`crash point reached: SIGKILL (KEEL_CRASH_AT=${point})`))
      violation(point, `keel died by SIGKILL but not at ${point}: ${p.stderr().slice(-300)}`);
    record(point);
    await checkAfterDeath({ world, laneId, chat, asked, answered: before?.answered ?? [], point, violation });
  }
  await finishTask({ world, laneId, chat, lastPoint, violation });
  return segments;
}

/** The steps of `laneId`'s model requests since the `asked`-th that ask again one of `answered`. */
const askedAgain = (chat, asked, laneId, answered) =>
  chat.requests
    .slice(asked)
    .filter((r) => laneOf(r.body) === laneId)
    .map((r) => stepOf(r.body))
    .filter((step) => answered.includes(step));

/**
 * The checks after a death: nothing left running in the task's directory (20 s allowed), and no
 * model call whose reply was recorded before the segment (`answered`) asked again since the
 * `asked`-th request.
 */
export async function checkAfterDeath({ world, laneId, chat, asked, answered, point, violation }) {
  const left = await leftoverIn(world.dir);
  if (left.length > 0) {
    killAll(left);
    violation(point, `left running after the death: ${left.map((q) => q.cmdline).join(' | ')}`);
  }
  const again = askedAgain(chat, asked, laneId, answered);
  if (again.length > 0) violation(point, `recorded model call(s) asked again: steps ${again.join(', ')}`);
}

/**
 * The clean finish of a task some deaths interrupted, and the end checks: a clean `keel resume`
 * (unless it already succeeded) asks no recorded model call again; the task succeeded with steps
 * 1..7 recorded once; `git log` exactly the two commits; both files written; `keel audit verify` and
 * the servers' `audit verify` ok; nothing left running. `violation(point, what)` is told of each
 * failure, as following `lastPoint`.
 */
export async function finishTask({ world, laneId, chat, lastPoint, violation }) {
  const task = readTask(world);
  const asked = chat.requests.length;
  if (task?.status !== 'succeeded') {
    const args = task === undefined ? ['run', 'task.yaml', '--quiet'] : ['resume', task.id, '--quiet'];
    const p = startKeel(args, world.dir);
    const exit = await p.exited;
    if (exit.code !== 0)
      violation(lastPoint, `final keel ${args[0]} exited ${exit.code}: ${p.stderr().slice(-400)}`);
  }
  const done = readTask(world);
  const again = askedAgain(chat, asked, laneId, task?.answered ?? []);
  if (again.length > 0)
    violation(lastPoint, `recorded model call(s) asked again on the final resume: steps ${again.join(', ')}`);
  if (done?.status !== 'succeeded') violation(lastPoint, `task ended ${done?.status}`);
  if (
    done !== undefined &&
    done.answered.join(',') !== Array.from({ length: expectedSteps }, (_, i) => i + 1).join(',')
  )
    violation(lastPoint, `recorded steps ${done.answered.join(',')}, expected 1..${expectedSteps}`);
  const log = (await execFile('git', ['log', '--format=%s'], { cwd: world.ws })).stdout.trim().split('\n');
  if (log.join('|') !== 'chaos two|chaos one|initial') violation(lastPoint, `git log: ${log.join(' | ')}`);
  const files = ['a.txt', 'b.txt'].map((f) => {
    try {
      return readFileSync(path.join(world.ws, f), 'utf8');
    } catch {
      return null;
    }
  });
  if (files.join('|') !== 'alpha\n|beta\n') violation(lastPoint, `files: ${JSON.stringify(files)}`);
  const verify = await execFile(process.execPath, [keelBin, 'audit', 'verify'], {
    cwd: world.dir,
    env: { ...process.env, KEEL_CONFIG: '' },
  }).then(
    (r) => r.stdout,
    (e) => `FAILED ${e.stdout}${e.stderr}`,
  );
  if (!verify.startsWith('ok:')) violation(lastPoint, `keel audit verify: ${verify.trim()}`);
  const serverAudit = await execFile(process.execPath, [
    bins.filesystem,
    'audit',
    'verify',
    '--state-dir',
    path.join(world.state, 'servers'),
  ]).then(
    () => undefined,
    (e) => `${e.stdout}${e.stderr}`,
  );
  if (serverAudit !== undefined) violation(lastPoint, `servers' audit verify: ${serverAudit.trim()}`);
  const left = await leftoverIn(world.dir);
  if (left.length > 0) {
    killAll(left);
    violation(lastPoint, `left running after the finish: ${left.map((q) => q.cmdline).join(' | ')}`);
  }
}
