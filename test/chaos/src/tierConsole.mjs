// Tier C, the console: a task escalates at its step limit (`keel run`), a person continues it from
// `keel console` over the console's HTTP API (with its login, as the page does), the console resumes
// the task in its own process, and is SIGKILLed with the servers it started at a seeded moment of
// that resume (after its k-th model request and a delay of up to `windowMs`). Then `keel resume`
// finishes the task. Invariants, as tier B: nothing left running after the death; no model call
// whose reply was recorded before the continue asked again; at the end the task succeeded with
// steps 1–7 recorded once, `git log` exactly its two commits, both files written, `keel audit
// verify` and the servers' `audit verify` ok, nothing left running.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { killAll, sleep } from './procs.mjs';
import {
  checkAfterDeath,
  childrenOf,
  createTaskWorld,
  finishTask,
  laneOf,
  readTask,
  startKeel,
} from './tierB.mjs';

export const consoleFault = { tier: 'C', target: 'keel console', point: 'random (resuming a task)' };
/** The kill's point when the resume had already ended before it: the console still dies. */
export const consoleLatePoint = 'random (after the resume ended)';

function pendingEscalation(world, taskId) {
  const db = new Database(path.join(world.state, 'tasks.db'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db
      .prepare("SELECT id FROM approvals WHERE task_id = ? AND kind = 'escalation' AND status = 'pending'")
      .get(taskId)?.id;
  } finally {
    db.close();
  }
}

async function until(probe, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined || Date.now() > end) return value;
    await sleep(50);
  }
}

/** Continues escalation `id` from the console at `url`, as its page does: token, page token, Origin. */
async function continueFromConsole(url, token, id) {
  const auth = { authorization: `Bearer ${token}` };
  const page = await (await fetch(url, { headers: auth })).text();
  const pageToken = /name="keel-page-token" content="([^"]+)"/.exec(page)?.[1];
  if (pageToken === undefined) return `the console's page carries no page token: ${page.slice(0, 200)}`;
  const res = await fetch(new URL(`api/escalations/${id}/continue`, url), {
    method: 'POST',
    headers: {
      ...auth,
      origin: new URL(url).origin,
      'x-keel-page-token': pageToken,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ by: 'chaos', raise: { steps: 20 } }),
  });
  const answer = await res.text();
  return res.status === 202 ? undefined : `continue answered ${res.status}: ${answer.slice(0, 300)}`;
}

/**
 * One round: the console killed while it resumes a task, then `keel resume`. `record(point,
 * violation?)` is told of the death and of each violation.
 */
export async function runRoundConsole({ dir, laneId, chat, random, windowMs = 300, record }) {
  const world = await createTaskWorld(dir, laneId, chat.url, { stepLimit: 3 });
  const violation = (point, what) => record(point, what);
  const run = startKeel(['run', 'task.yaml', '--quiet'], world.dir);
  await run.exited;
  const escalated = readTask(world);
  const escalation = escalated === undefined ? undefined : pendingEscalation(world, escalated.id);
  if (escalated?.status !== 'escalated' || escalation === undefined) {
    violation(consoleFault.point, `the task did not escalate at its step limit: ${escalated?.status}`);
    return;
  }
  const token = randomBytes(18).toString('base64url');
  const keelConsole = startKeel(['console', '--port', '0'], world.dir, { KEEL_CONSOLE_TOKEN: token });
  const url = await until(async () => /keel console on (\S+)/.exec(keelConsole.stdout())?.[1], 30_000);
  if (url === undefined) {
    process.kill(keelConsole.pid, 'SIGKILL');
    violation(consoleFault.point, `keel console did not start: ${keelConsole.stderr().slice(-300)}`);
    return;
  }
  const asked = chat.requests.length;
  const refused = await continueFromConsole(url, token, escalation);
  if (refused !== undefined) {
    process.kill(keelConsole.pid, 'SIGKILL');
    violation(consoleFault.point, refused);
    return;
  }
  // The moment: once the resume has asked the model for its k-th step (k seeded, of the four left),
  // then a seeded delay of up to `windowMs`.
  const k = random.int(1, 5);
  await until(
    async () =>
      chat.requests.slice(asked).filter((r) => laneOf(r.body) === laneId).length >= k ? true : undefined,
    30_000,
  );
  await sleep(random.next() * windowMs);
  const point = readTask(world)?.status === 'succeeded' ? consoleLatePoint : consoleFault.point;
  // A machine crash: the console and the servers it started for the task go at once.
  const servers = childrenOf(keelConsole.pid);
  process.kill(keelConsole.pid, 'SIGKILL');
  killAll(servers.map((pid) => ({ pid })));
  await keelConsole.exited;
  record(point);
  await checkAfterDeath({ world, laneId, chat, asked, answered: escalated.answered, point, violation });
  await finishTask({ world, laneId, chat, lastPoint: point, violation });
}
