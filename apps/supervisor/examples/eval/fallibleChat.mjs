// The sample eval's model: a seeded, fallible one, served over the OpenAI protocol by the scripted
// chat server from @keel/testing (so it runs from a checkout of this repository). Which agent is
// asking is read from the final tool it is offered; its turn from the conversation so far.
import { startScriptedChatServer } from '@keel/testing/chat-server';

const right = 'for (const item of items) sum += item.price * item.qty;';
const wrong = 'for (const item of items) sum += item.price + item.qty;';
const cart = (loop) =>
  `/** The total of a cart: each item's price times its quantity. */\nexport function total(items) {\n  let sum = 0;\n  ${loop}\n  return sum;\n}\n`;

/** A small seeded generator (mulberry32): the same seed, the same draws. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const call = (name, args) => ({ toolCalls: [{ name, arguments: args }] });

export async function startChatServer({ seed, wrongPatchRate = 0.5, catchRate = 0.6 }) {
  const outcome = random(seed);
  const delay = random(seed ^ 0x9e3779b9);
  const script = ({ body }) => {
    const tools = new Set((body.tools ?? []).map((t) => t.function.name));
    const turn = body.messages.filter((m) => m.role === 'assistant').length;
    const lastTool = body.messages.filter((m) => m.role === 'tool').at(-1)?.content ?? '';
    let reply;
    if (tools.has('submit_plan'))
      reply =
        turn === 0
          ? call('read_file', { path: 'lib/cart.js' })
          : call('submit_plan', {
              version: 'plan.v1',
              summary: 'Multiply each price by its quantity in total().',
              steps: [{ id: 's1', description: 'total() sums price * qty', files: ['lib/cart.js'] }],
              acceptance: ['test/cart.test.js passes'],
            });
    else if (tools.has('submit_change')) {
      if (turn === 0)
        reply = call('write_file', {
          path: 'lib/cart.js',
          content: cart(outcome() < wrongPatchRate ? wrong : right),
        });
      else if (turn === 1) reply = call('git_commit', { message: 'total() counts quantities', all: true });
      else {
        const sha = /\b[0-9a-f]{40}\b/.exec(lastTool)?.[0];
        reply = call('submit_change', {
          version: 'change.v1',
          summary: 'total() multiplies each price by its quantity',
          files: [{ path: 'lib/cart.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
          commit: sha === undefined ? null : { sha, message: 'total() counts quantities' },
        });
      }
    } else if (tools.has('submit_review')) {
      if (turn === 0) reply = call('read_file', { path: 'lib/cart.js' });
      else {
        const correct = lastTool.includes('item.price * item.qty');
        const caught = !correct && outcome() < catchRate;
        reply = call('submit_review', {
          version: 'review.v1',
          verdict: caught ? 'request_changes' : 'approve',
          summary: caught
            ? 'total() adds the quantity instead of multiplying by it.'
            : 'total() matches the plan.',
          comments: caught
            ? [{ path: 'lib/cart.js', severity: 'blocker', body: 'multiply price by qty' }]
            : [],
        });
      }
    } else reply = { text: 'I have no tool for this.' };
    // Usage and delay from the turn and the seed, not from the bytes of the request, so a run's
    // tokens and cost do not move with timings that appear in tool results.
    return {
      ...reply,
      usage: { inputTokens: 900 + 450 * turn, outputTokens: 40 + 15 * turn },
      delayMs: 5 + Math.floor(delay() * 25),
    };
  };
  const server = await startScriptedChatServer({ script });
  return { url: server.url, close: () => server.close() };
}
