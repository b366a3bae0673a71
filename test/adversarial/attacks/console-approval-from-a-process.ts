import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { startConsole } from '../src/console.js';
import { waitingDeployWrite } from '../src/waiting.js';
import type { Project } from '../src/world.js';

/** A task waiting for a human to approve its write under deploy/. */
async function waiting() {
  const { p, approval } = await waitingDeployWrite();
  return { p, approvalId: approval };
}

const approval = async (p: Project, id: string) =>
  JSON.parse((await p.keel(['approvals', 'show', id, '--json'])).stdout) as {
    status: string;
    decidedBy: string | null;
  };

/** What a process that knows only the console's address can do: read its page, and POST as the page would. */
async function approveAsAProcess(base: string, approvalId: string, headers: Record<string, string> = {}) {
  const page = await fetch(base, { headers, redirect: 'manual' });
  const pageToken = /name="keel-page-token" content="([^"]+)"/.exec(await page.text())?.[1];
  const post = await fetch(new URL(`/api/approvals/${approvalId}/approve`, base), {
    method: 'POST',
    headers: {
      ...headers,
      origin: new URL(base).origin,
      'content-type': 'application/json',
      'x-keel-page-token': pageToken ?? '',
    },
    body: JSON.stringify({ by: 'mallory' }),
  });
  return { page: page.status, post: post.status };
}

export default defineAttack({
  id: 'console-approval-from-a-process',
  item: '19.5',
  onMain: 'failed',
  title:
    "a process on the machine (a test file the agent wrote) reads the loopback console's page for its page token and POSTs an approval with the console's `Origin`: the console had no login on loopback, so the waiting call was approved by 'mallory'",
  proves:
    'the console needs its login token on loopback too: generated at start, printed in the URL `keel console` prints, kept in a cookie after the first visit',
  async attack() {
    const { p, approvalId } = await waiting();
    const { url } = await startConsole(p);
    const base = new URL('/', url).href;
    expect(await approveAsAProcess(base, approvalId)).toEqual({ page: 401, post: 401 });
    expect((await approval(p, approvalId)).status).toBe('pending');
  },
  twin: {
    title: 'the person who opens the printed URL gets the console, its page token and the approval',
    async run() {
      const { p, approvalId } = await waiting();
      const { url } = await startConsole(p);
      const token = new URL(url).searchParams.get('token');
      expect(token).toMatch(/^[\w-]{32}$/);
      // The first visit trades the token for a cookie and drops it from the address.
      const first = await fetch(url, { redirect: 'manual' });
      expect([first.status, first.headers.get('location'), first.headers.get('set-cookie')]).toEqual([
        303,
        '/',
        `keel_console_token=${token}; HttpOnly; SameSite=Strict; Path=/`,
      ]);
      const base = new URL('/', url).href;
      expect(await approveAsAProcess(base, approvalId, { cookie: `keel_console_token=${token}` })).toEqual({
        page: 200,
        post: 202,
      });
      expect(await approval(p, approvalId)).toMatchObject({ status: 'approved', decidedBy: 'mallory' });
    },
  },
});
