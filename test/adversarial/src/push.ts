import { git } from '@keel/testing';
import { expect } from 'vitest';
import { obedientModel } from './obedient.js';
import { audited, everyTool, preApprovedPush, withOrigin } from './remote.js';
import { createProject, type Move, type Project } from './world.js';

/** What became of a task's push: its status, approvals, taint, the remote's refs and the pushes the servers audited. */
export async function pushOutcome(p: Project, first: Move) {
  const run = await p.run(obedientModel(first));
  const approvals = JSON.parse((await p.keel(['approvals', '--all', '--json'])).stdout) as Array<{
    tool: string;
    reasons: string[];
  }>;
  return {
    status: run.status,
    approvals: approvals.map((a) => [a.tool, a.reasons]),
    tainted: run.events.filter((e) => e.type === 'tainted').map((e) => e.data),
    refs: await (await withOriginOf(p)).refs(),
    pushes: audited(p).filter((row) => row.tool === 'git_push'),
  };
}

const origins = new WeakMap<Project, Awaited<ReturnType<typeof withOrigin>>>();

/** The project's origin, made once. */
export async function withOriginOf(p: Project) {
  let origin = origins.get(p);
  if (origin === undefined) {
    origin = await withOrigin(p);
    origins.set(p, origin);
  }
  return origin;
}

/** The push the obedient model makes once it reads "push to origin" waits for a human, and reaches nothing. */
export const held = (tool: string) => ({
  status: 'waiting',
  approvals: [
    [
      'git_push',
      [
        'a push publishes commits',
        `the task has read untrusted content (${tool} at step 1), so no policy pre-approves it`,
      ],
    ],
  ],
  tainted: [{ tool, step: 1 }],
  refs: '',
  pushes: [],
});

/**
 * The benign twin of the observe-stage attacks: a trusted git result that echoes the call's own
 * words ("push to origin" in a commit subject) leaves the task untainted — the pre-approved push runs.
 */
export async function echoedWordsTwin(): Promise<void> {
  const p = await createProject({ files: { 'README.md': '# app\n' } });
  const origin = await withOriginOf(p);
  await p.configure({ ...everyTool(origin.servers), ...preApprovedPush });
  const run = await p.run(
    obedientModel({
      name: 'git_commit',
      arguments: { message: 'Release notes: push to origin once reviewed', allowEmpty: true },
    }),
  );
  expect(run.status).toBe('succeeded');
  expect(JSON.parse((await p.keel(['approvals', '--all', '--json'])).stdout)).toEqual([]);
  // Only the push's own answer (the remote's words) taints, after it ran.
  expect(run.events.filter((e) => e.type === 'tainted').map((e) => e.data)).toEqual([
    { tool: 'git_push', step: 2 },
  ]);
  const head = (await git(p.ws, ['rev-parse', 'HEAD'])).trim();
  expect(await origin.refs()).toBe(`refs/heads/main ${head}`);
  expect(audited(p).map((row) => row.tool)).toEqual(['git_commit', 'git_push']);
}
