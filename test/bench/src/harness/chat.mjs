// The scripted model: the testing package's chat-completions server, one per contender, answering
// each request with the step its conversation has reached, after a fixed latency. Its own time per
// request (request in to response flushed) is taken at its side from Node's HTTP diagnostics
// channels, so a contender's overhead can exclude it without trusting the contender's clock.
import diagnostics from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import { commitSubject, steps } from './task.mjs';

/** Per local port: each request's [in, out] in performance.now() milliseconds, in arrival order. */
const timings = new Map();
const inFlight = new WeakMap();
let subscribed = false;

function subscribe() {
  if (subscribed) return;
  subscribed = true;
  diagnostics.subscribe('http.server.request.start', ({ request, socket }) => {
    const list = timings.get(socket.localPort);
    if (list === undefined) return;
    const entry = { in: performance.now(), out: undefined };
    list.push(entry);
    inFlight.set(request, entry);
  });
  diagnostics.subscribe('http.server.response.finish', ({ request }) => {
    const entry = inFlight.get(request);
    if (entry !== undefined) entry.out = performance.now();
  });
}

/**
 * The arguments Keel's coding agent hands in with: the change the script made, with its commit (the
 * full sha, which the commit's result text abbreviates, read from the branch's ref file: a process
 * spawned here would count as model time and lengthen Keel's task).
 */
function keelChange(workspaceDir) {
  const head = readFileSync(path.join(workspaceDir, '.git', 'HEAD'), 'utf8').trim();
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  const sha = ref === undefined ? head : readFileSync(path.join(workspaceDir, '.git', ref), 'utf8').trim();
  return {
    version: 'change.v1',
    summary: 'add() returned the difference; it returns the sum now, and its test passes.',
    files: [{ path: 'src/math.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
    commit: { sha, message: commitSubject },
  };
}

/**
 * A scripted model for one contender. Keel's agent ends by handing in its change.v1 through its
 * final tool; a peer's ends with a text answer. Any request past the end is answered 500, which
 * fails the contender's task loudly.
 */
export async function startModel({ finish, latencyMs, workspaceDir }) {
  subscribe();
  const server = await startScriptedChatServer({
    script: ({ body }) => {
      const messages = body.messages ?? [];
      const k = messages.filter((m) => m.role === 'assistant' && (m.tool_calls ?? []).length > 0).length;
      const delay = latencyMs() > 0 ? { delayMs: latencyMs() } : {};
      if (k < steps.length)
        return { ...delay, toolCalls: [{ name: steps[k].name, arguments: steps[k].args }] };
      if (k === steps.length) {
        if (finish === 'keel')
          return { ...delay, toolCalls: [{ name: 'submit_change', arguments: keelChange(workspaceDir) }] };
        return { ...delay, text: 'done' };
      }
      return { status: 500, error: { type: 'script_exhausted', message: `request after step ${k}` } };
    },
  });
  const port = Number(new URL(server.url).port);
  const times = [];
  timings.set(port, times);
  return {
    url: server.url,
    requests: server.requests,
    /** The server's own time for requests [from, to), in ms; throws if one is still open. */
    serverMs(from, to) {
      let sum = 0;
      for (let i = from; i < to; i++) {
        const t = times[i];
        if (t === undefined || t.out === undefined)
          throw new Error(`model request ${i} has no server timing`);
        sum += t.out - t.in;
      }
      return sum;
    },
    /** Requests [from, to) as [in, out] in epoch milliseconds, for a task's timeline. */
    serverTimes(from, to) {
      return times
        .slice(from, to)
        .map((t) => [performance.timeOrigin + t.in, performance.timeOrigin + (t.out ?? Number.NaN)]);
    },
    async close() {
      timings.delete(port);
      await server.close();
    },
  };
}
