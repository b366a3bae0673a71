// Tier A: a server process dies mid-call (SIGKILL at a seeded random moment, or at a named crash
// point it kills itself at), is started again, and the same call is retried with the same
// idempotency key. Invariants after every death: the retry answers ok, the edit/commit/release
// happened exactly once, no torn release, nothing the dead server started is left running, and
// (every few rounds and at the end) the audit log's hash chain verifies.
import { execFile as execFileCb } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startServer, lastLogLine } from './mcp.mjs';
import { killAll, leftoverIn } from './procs.mjs';
import { initRepo } from './repo.mjs';

const execFile = promisify(execFileCb);
const repoRoot = new URL('../../../', import.meta.url).pathname;
export const bins = {
  filesystem: path.join(repoRoot, 'servers/filesystem/dist/bin.js'),
  git: path.join(repoRoot, 'servers/git/dist/bin.js'),
  'test-runner': path.join(repoRoot, 'servers/test-runner/dist/bin.js'),
  deploy: path.join(repoRoot, 'servers/deploy/dist/bin.js'),
};

const kitPoints = ['kit.after-claim', 'kit.after-effect'];
/** The kill modes of each server: its crash points, and `random` (SIGKILL from outside). */
export const tierAPoints = {
  filesystem: ['random', ...kitPoints],
  'filesystem-insert': ['random', ...kitPoints],
  git: ['random', ...kitPoints],
  'test-runner': ['random', ...kitPoints],
  deploy: [
    'random',
    ...kitPoints,
    'deploy.after-token-spent',
    'deploy.after-copy',
    'deploy.after-switch',
    'deploy.between-release-and-prune',
  ],
};
/** Upper bound of a random kill's delay after the call is sent, per server (ms). */
const randomWindowMs = {
  filesystem: 120,
  'filesystem-insert': 120,
  git: 250,
  'test-runner': 600,
  deploy: 250,
};
const keep = 3;

const git = (cwd, args) => execFile('git', args, { cwd }).then((r) => r.stdout);

/** A lane: its own workspace (a git repository), state directory and deploy target. */
export async function createLane(dir) {
  const ws = path.join(dir, 'ws');
  mkdirSync(path.join(ws, 'app'), { recursive: true });
  mkdirSync(path.join(ws, 'test'), { recursive: true });
  mkdirSync(path.join(ws, 'commits'), { recursive: true });
  writeFileSync(path.join(ws, 'notes.txt'), 'END\n');
  writeFileSync(path.join(ws, 'marks.txt'), '@r0@\n');
  writeFileSync(path.join(ws, 'app', 'round.txt'), '0\n');
  writeFileSync(
    path.join(ws, 'package.json'),
    `${JSON.stringify({ name: 'chaos-app', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
  );
  writeFileSync(
    path.join(ws, 'test', 'ok.test.js'),
    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\n\ntest('sums', () => {\n  assert.equal(2 + 3, 5);\n});\n",
  );
  writeFileSync(
    path.join(ws, 'keel.deploy.yaml'),
    `environments:\n  staging:\n    build: app\n    target: { type: directory, path: ../deploys/staging }\n    policy: { keep: ${keep} }\n`,
  );
  writeFileSync(path.join(ws, '.gitignore'), 'node_modules\n');
  await initRepo(ws);
  return { dir, ws, state: path.join(dir, 'state'), target: path.join(dir, 'deploys', 'staging') };
}

const gitEnv = {
  GIT_AUTHOR_NAME: 'chaos',
  GIT_AUTHOR_EMAIL: 'chaos@example.invalid',
  GIT_COMMITTER_NAME: 'chaos',
  GIT_COMMITTER_EMAIL: 'chaos@example.invalid',
};

function serverOptions(lane, target, crashAt) {
  const args = ['--root', '.', '--state-dir', lane.state, '--log-level', 'warn'];
  if (target === 'deploy') args.push('--config', 'keel.deploy.yaml');
  return {
    bin: binOf(target),
    args,
    cwd: lane.ws,
    env: { ...gitEnv, KEEL_CRASH_AT: crashAt ?? '' },
  };
}

/** The call of a round, prepared on disk first; `check` proves it happened exactly once. */
async function prepareRound(lane, server, round) {
  const tag = `r${round}`;
  switch (server) {
    case 'filesystem': {
      // An edit the file shows afterwards: its new text does not contain its old (`@r3@` → `r4\n@r4@`).
      const file = path.join(lane.ws, 'marks.txt');
      const before = readFileSync(file, 'utf8');
      const mark = before.trim().split('\n').at(-1);
      const expected = before.replace(mark, `${tag}\n@${tag}@`);
      return {
        name: 'edit_file',
        args: { path: 'marks.txt', edits: [{ oldText: mark, newText: `${tag}\n@${tag}@` }] },
        async check() {
          const now = readFileSync(file, 'utf8');
          return now === expected
            ? undefined
            : `the edit of ${tag} is in marks.txt ${now.split('\n').filter((line) => line === tag).length} time(s), not once`;
        },
      };
    }
    case 'filesystem-insert': {
      // An insertion: the new text contains the old (`END` → `r4\nEND`), as a model inserting
      // above a line writes it.
      // With expectedSha256 (from read_file), as the file's pre-image: an insertion still applies
      // once it landed, so only the hash lets a retry tell whether it did.
      const before = readFileSync(path.join(lane.ws, 'notes.txt'), 'utf8');
      return {
        name: 'edit_file',
        args: {
          path: 'notes.txt',
          edits: [{ oldText: 'END', newText: `${tag}\nEND` }],
          expectedSha256: createHash('sha256').update(before).digest('hex'),
        },
        async check() {
          const now = readFileSync(path.join(lane.ws, 'notes.txt'), 'utf8');
          const expected = before.replace('END', `${tag}\nEND`);
          return now === expected
            ? undefined
            : `the insertion of ${tag} is in notes.txt ${now.split('\n').filter((line) => line === tag).length} time(s), not once`;
        },
      };
    }
    case 'git': {
      writeFileSync(path.join(lane.ws, 'commits', `${tag}.txt`), `${tag}\n`);
      await git(lane.ws, ['add', `commits/${tag}.txt`]);
      const count = Number((await git(lane.ws, ['rev-list', '--count', 'HEAD'])).trim());
      return {
        name: 'git_commit',
        args: { message: `chaos ${tag}` },
        async check() {
          const now = Number((await git(lane.ws, ['rev-list', '--count', 'HEAD'])).trim());
          const last = (await git(lane.ws, ['log', '-1', '--format=%s'])).trim();
          if (now !== count + 1 || last !== `chaos ${tag}`)
            return `expected one commit 'chaos ${tag}' on ${count}, found ${now} commits, HEAD '${last}'`;
          if (existsSync(path.join(lane.ws, '.git', 'index.lock'))) return '.git/index.lock left behind';
          return undefined;
        },
      };
    }
    case 'test-runner':
      return {
        name: 'run_tests',
        args: { fresh: true },
        async check(result) {
          const outcome = result.structuredContent?.outcome;
          return outcome === 'passed' ? undefined : `run_tests outcome ${JSON.stringify(outcome)}`;
        },
      };
    case 'deploy': {
      writeFileSync(path.join(lane.ws, 'app', 'round.txt'), `${round}\n`);
      return {
        name: 'apply_deploy',
        planFirst: true,
        async check(result) {
          const releaseId = result.structuredContent?.releaseId;
          const releases = readdirSync(path.join(lane.target, 'releases'));
          const live = path.basename(readlinkSync(path.join(lane.target, 'current')));
          if (live !== releaseId) return `current is ${live}, the apply answered ${releaseId}`;
          const content = readFileSync(path.join(lane.target, 'current', 'round.txt'), 'utf8');
          if (content !== `${round}\n`)
            return `the live release holds round ${JSON.stringify(content)}, not ${round}`;
          if (releases.length > keep)
            return `${releases.length} releases on the target, keep is ${keep}: not pruned`;
          for (const release of releases)
            if (!existsSync(path.join(lane.target, 'releases', release, 'round.txt')))
              return `torn release ${release}: no round.txt`;
          // `.keel` holds the target's manifests.
          const strays = readdirSync(lane.target).filter(
            (name) => !['releases', 'current', '.keel'].includes(name),
          );
          if (strays.length > 0) return `left on the target: ${strays.join(', ')}`;
          return undefined;
        },
      };
    }
    default:
      throw new Error(`unknown server ${server}`);
  }
}

const isError = (result) => result?.isError === true;
const text = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('\n');

/** The bin a round's target runs (`filesystem-insert` is the filesystem server). */
export const binOf = (target) => bins[target === 'filesystem-insert' ? 'filesystem' : target];

const keyOf = (lane, round) => `chaos-${path.basename(lane.dir)}-${round}`;
/** KEEL_CRASH_AT for a round: its point, armed only in its own keyed call; `random` arms none. */
const armFor = (lane, { point, round }) =>
  point === 'random' ? undefined : `${point}@${keyOf(lane, round)}`;

/**
 * One death and its recovery. `victim` is a server already running for this round (the previous
 * round's retry server, armed for this round's call), else one is started. `next`, when the lane's
 * next round is a tier A round of the same bin, has the retry server armed for it and kept (`held`)
 * to be its victim: one start-up per death instead of two. Returns the violation found, if any (a
 * string), and what the death was (`point`, and for random kills whether the call had answered
 * before the kill).
 */
export async function runRoundA({ lane, server, point, round, random, victim, next }) {
  const call = await prepareRound(lane, server, round);
  const key = keyOf(lane, round);
  const armed = victim ?? (await startServer(serverOptions(lane, server, armFor(lane, { point, round }))));
  let args = call.args;
  if (call.planFirst) {
    // The plan is not keyed: no crash point fires on it.
    const plan = await armed.call('plan_deploy', { environment: 'staging' });
    if (isError(plan)) {
      await armed.kill();
      return { violation: `plan_deploy failed: ${text(plan)}` };
    }
    args = { planId: plan.structuredContent.planId };
  }
  let answered = false;
  const first = armed.call(call.name, args, key).then(
    (result) => ((answered = true), result),
    () => undefined,
  );
  if (point === 'random') {
    const delay = random.next() * randomWindowMs[server];
    await Promise.race([new Promise((resolve) => setTimeout(resolve, delay)), armed.exited]);
    await armed.kill();
  } else {
    const exit = await armed.exited;
    const last = lastLogLine(armed.stderr());
    if (exit.signal !== 'SIGKILL' || last?.crashPoint !== point) {
      const result = await first;
      return {
        violation: `no death at ${point}: exit ${exit.signal ?? exit.code}, last log ${JSON.stringify(last)}, answer ${text(result).slice(0, 200)}`,
      };
    }
  }
  await first;
  // What the dead server started (a git, a test run) may finish on its own; it must not stay.
  const left = await leftoverIn(lane.dir);
  if (left.length > 0) {
    killAll(left);
    return { violation: `left running after the death: ${left.map((p) => p.cmdline).join(' | ')}` };
  }
  const keep = next !== undefined && binOf(next.server) === binOf(server);
  const retry = await startServer(serverOptions(lane, server, keep ? armFor(lane, next) : undefined));
  let held;
  try {
    const result = await retry.call(call.name, args, key);
    if (isError(result)) return { violation: `the retry failed: ${text(result).slice(0, 300)}`, answered };
    const broken = await call.check(result);
    if (broken !== undefined) return { violation: broken, answered };
    if (keep) held = retry;
    return { answered, held, replayed: result._meta?.['keel/idempotency']?.replayed === true };
  } finally {
    if (held === undefined) await retry.close();
  }
}

/** `audit verify` of the lane's state directory (the log the four servers share). */
export async function verifyAudit(lane) {
  try {
    await execFile(process.execPath, [bins.filesystem, 'audit', 'verify', '--state-dir', lane.state]);
    return undefined;
  } catch (error) {
    return `audit verify failed: ${(error.stdout ?? '') + (error.stderr ?? '')}`.trim();
  }
}
