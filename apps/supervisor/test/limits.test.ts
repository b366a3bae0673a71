import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '@keel/kit';
import { fixtureBin } from '@keel/testing';
import { overreportingReplies, type ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { inputTokenBound } from '../src/models/tokens.js';
import type { ModelRequest } from '../src/models/model.js';
import { builtinServers, readTools } from './helpers.js';
import { callList, emptyChange, runScripted } from './scripted.js';

const write = (file: string, content: string): ScriptedReply => ({
  toolCalls: [{ name: 'write_file', arguments: { path: file, content } }],
  usage: { inputTokens: 10, outputTokens: 10 },
});
const submit: ScriptedReply = { toolCalls: [{ name: 'submit_change', arguments: emptyChange }] };

/** The recorded request of a model call, in the shape the budget bounds. */
const requestOf = (call: { request: unknown }) =>
  call.request as Pick<ModelRequest, 'messages' | 'tools'> & { maxTokens: number };

let probed: Promise<number[]> | undefined;
/**
 * The input-token bounds of the three requests of [write a.txt, write b.txt, submit] under no
 * tight limit: the same requests the limit tests make, so their limits can be set to the token.
 */
function probeBounds(): Promise<number[]> {
  probed ??= runScripted({ script: [write('a.txt', 'a\n'), write('b.txt', 'b\n'), submit] }).then((r) => {
    expect(r.run.status).toBe('succeeded');
    return r.modelCalls.map((c) => {
      // The reservation is the bound of exactly what was recorded as sent.
      expect(c.reservedInputTokens).toBe(inputTokenBound(requestOf(c)));
      return c.reservedInputTokens;
    });
  });
  return probed;
}

describe('limits, checked before every call', () => {
  it('steps: the call after the last allowed step never reaches the provider', async () => {
    const r = await runScripted({
      script: [write('a.txt', 'a\n'), write('b.txt', 'b\n'), write('c.txt', 'c\n')],
      taskFile: { limits: { steps: 2 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: 'step limit of 2 reached', limit: 'steps' });
    expect(r.run.steps).toBe(2);
    expect(r.server.requests.length).toBe(2);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'filesystem.write_file:ok']);
    expect([r.exists('a.txt'), r.exists('b.txt'), r.exists('c.txt')]).toEqual([true, true, false]);
  });

  it("an agent's own step cap stops it within the task's", async () => {
    const r = await runScripted({
      script: [write('a.txt', 'a\n'), write('b.txt', 'b\n')],
      config: {
        agents: {
          planning: { model: 'gpt', tools: {} },
          coding: { model: 'gpt', tools: {}, limits: { steps: 1 } },
          review: { model: 'gpt', tools: {} },
        },
      },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: "the agent's step limit of 1 reached", limit: 'steps' });
    expect(r.server.requests.length).toBe(1);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok']);
  });

  it('tokens: max_tokens shrinks to what is left, down to 256, then the next call is refused', async () => {
    const [b1, b2, b3] = await probeBounds();
    // Call 2 is left exactly its input bound + 256 after call 1's 10+10 tokens.
    const limit = 20 + b2! + 256;
    const r = await runScripted({
      script: [write('a.txt', 'a\n'), write('b.txt', 'b\n'), submit],
      taskFile: { limits: { tokens: limit } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: `token limit: ${b3} input (bound) + 256 output would cross what is left (${b2! + 236} of ${limit})`,
      limit: 'tokens',
    });
    expect(r.server.requests.map((q) => q.body.max_tokens)).toEqual([limit - b1!, 256]);
    expect(r.modelCalls.map((c) => [c.reservedInputTokens, c.reservedOutputTokens])).toEqual([
      [b1, limit - b1!],
      [b2, 256],
    ]);
    expect(r.run.tokens).toEqual({ input: 20, output: 20 });
    expect(r.run.steps).toBe(2);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'filesystem.write_file:ok']);
  });

  it('money: max_tokens shrinks to what the price table leaves, and a call that cannot fit 256 never starts', async () => {
    const [b1, b2] = await probeBounds();
    // $1 a token each way: call 1 is left exactly its input bound + 300 output tokens.
    const limit = b1! + 300;
    const r = await runScripted({
      script: [
        { ...write('a.txt', 'a\n'), usage: { inputTokens: 40, outputTokens: 10 } },
        write('b.txt', 'b\n'),
      ],
      config: { prices: { 'test-model': { inputPerMTok: 1_000_000, outputPerMTok: 1_000_000 } } },
      taskFile: { limits: { costUsd: limit } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: `money limit: the call could cost $${(b2! + 256).toFixed(4)}, $${(b1! + 250).toFixed(4)} of $${limit.toFixed(4)} is left`,
      limit: 'money',
    });
    expect(r.server.requests.map((q) => q.body.max_tokens)).toEqual([300]);
    expect(r.modelCalls.map((c) => c.costUsd)).toEqual([50]);
    expect(r.run.costUsd).toBe(50);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok']);
    expect(r.exists('b.txt')).toBe(false);
  });

  it('tool calls: the calls of one reply past the limit never reach a server', async () => {
    const r = await runScripted({
      script: [
        {
          toolCalls: ['a.txt', 'b.txt', 'c.txt'].map((file) => ({
            name: 'write_file',
            arguments: { path: file, content: `${file}\n` },
          })),
        },
        submit,
      ],
      taskFile: { limits: { toolCalls: 2 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: 'tool-call limit of 2 reached', limit: 'tool_calls' });
    expect(r.server.requests.length).toBe(1);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'filesystem.write_file:ok']);
    expect([r.exists('a.txt'), r.exists('b.txt'), r.exists('c.txt')]).toEqual([true, true, false]);
  });

  it('an HTTP error releases the call’s reservation: nothing was generated, nothing is counted', async () => {
    // A 400 is not retried: one refused request.
    const r = await runScripted({ script: [{ status: 400, error: { message: 'max_tokens too large' } }] });
    expect(r.run.status).toBe('error');
    expect(r.modelCalls.map((c) => [c.inputTokens, c.outputTokens, c.costUsd])).toEqual([[0, 0, 0]]);
    expect(r.run.tokens).toEqual({ input: 0, output: 0 });
  });

  it('wall clock: the deadline cancels the model call in flight, and nothing starts after it', async () => {
    const r = await runScripted({
      script: [{ ...write('a.txt', 'a\n'), delayMs: 120_000 }, submit],
      taskFile: { limits: { wallClockMs: 2_000 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: 'wall-clock limit of 2000 ms reached', limit: 'wall_clock' });
    expect(await r.server.settled(0)).toBe('disconnected');
    expect(r.server.requests.length).toBe(1);
    // A cancelled call may have been billed: it keeps its reservation, counted at the bound.
    const [call] = r.modelCalls;
    expect(r.modelCalls.map((c) => [c.step, c.raw, c.reply, c.inputTokens, c.outputTokens])).toEqual([
      [1, null, null, call!.reservedInputTokens, call!.reservedOutputTokens],
    ]);
    expect(r.modelCalls[0]!.error).toBe('wall-clock limit reached');
    expect(r.toolCalls).toEqual([]);
    expect(r.run.tokens).toEqual({ input: call!.reservedInputTokens, output: call!.reservedOutputTokens });
    expect(r.exists('a.txt')).toBe(false);
  });
});

describe('a provider that reports more than was reserved', () => {
  it('tokens: the task stops at once after that call, with the overshoot recorded', async () => {
    const [b1] = await probeBounds();
    const limit = b1! + 500;
    const r = await runScripted({
      // Reports the input bound itself and 500 + 7 output tokens: 7 past the limit.
      script: overreportingReplies(
        [{ ...write('a.txt', 'a\n'), usage: { inputTokens: b1!, outputTokens: 0 } }],
        7,
      ),
      taskFile: { limits: { tokens: limit } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: `the provider reported ${b1}+507 tokens against a reservation of ${b1}+500: 7 past the token limit of ${limit}`,
      limit: 'tokens',
      overshoot: 7,
    });
    expect(r.server.requests.map((q) => q.body.max_tokens)).toEqual([500]);
    expect(r.modelCalls.map((c) => [c.inputTokens, c.outputTokens])).toEqual([[b1, 507]]);
    expect(r.run.tokens).toEqual({ input: b1, output: 507 });
    // The write it asked for never ran.
    expect(r.toolCalls).toEqual([]);
    expect(r.exists('a.txt')).toBe(false);
  });

  it('money: the overshoot is the dollars past the limit', async () => {
    const r = await runScripted({
      script: overreportingReplies(
        [{ ...write('a.txt', 'a\n'), usage: { inputTokens: 3, outputTokens: 0 } }],
        5,
      ),
      config: { prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 1_000_000 } } },
      taskFile: { limits: { costUsd: 300 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: "the provider's reported usage cost $5.0000 past the money limit of $300.0000",
      limit: 'money',
      overshoot: 5,
    });
    expect(r.server.requests.map((q) => q.body.max_tokens)).toEqual([300]);
    expect(r.run.costUsd).toBe(305);
    expect(r.toolCalls).toEqual([]);
    expect(r.exists('a.txt')).toBe(false);
  });
});

describe('side-effect caps, checked before the crossing call', () => {
  it('files changed: the write that would make a second file never runs', async () => {
    const r = await runScripted({
      script: [write('a.txt', 'a\n'), write('a.txt', 'a\nA\n'), write('b.txt', 'b\n'), submit],
      config: { sideEffects: { maxFilesChanged: 1 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: 'write_file would bring the files changed to 2, over the cap of 1',
      limit: 'files_changed',
    });
    expect(r.server.requests.length).toBe(3);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'filesystem.write_file:ok']);
    // The effect is the server's preview, kept whole in the record: the file's real path, what it
    // was before (null: absent), and the binding the real call carried.
    const ws = realpathSync(r.h.repo.dir);
    expect(r.toolCalls.map((c) => c.effect)).toEqual([
      {
        computable: true,
        files: [{ path: 'a.txt', linesAdded: 1, linesRemoved: 0 }],
        preview: {
          complete: true,
          files: [
            {
              path: path.join(ws, 'a.txt'),
              change: 'create',
              linesAdded: 1,
              linesRemoved: 0,
              sha256Before: null,
            },
          ],
          binding: expect.stringMatching(/^[0-9a-f]{64}$/),
        },
      },
      {
        computable: true,
        files: [{ path: 'a.txt', linesAdded: 1, linesRemoved: 0 }],
        preview: {
          complete: true,
          files: [
            {
              path: path.join(ws, 'a.txt'),
              change: 'modify',
              linesAdded: 1,
              linesRemoved: 0,
              sha256Before: sha256Hex('a\n'),
            },
          ],
          binding: expect.stringMatching(/^[0-9a-f]{64}$/),
        },
      },
    ]);
    expect(r.exists('b.txt')).toBe(false);
    expect(r.events.filter((e) => e.type === 'side_effect_cap').map((e) => e.data)).toEqual([
      {
        tool: 'write_file',
        args: { path: 'b.txt', content: 'b\n' },
        effect: {
          computable: true,
          files: [{ path: 'b.txt', linesAdded: 1, linesRemoved: 0 }],
          preview: expect.objectContaining({
            files: [expect.objectContaining({ path: path.join(ws, 'b.txt') })],
          }),
        },
        limit: 'files_changed',
        message: 'write_file would bring the files changed to 2, over the cap of 1',
      },
    ]);
  });

  it('lines changed: the write that would pass the cap never runs', async () => {
    const r = await runScripted({
      script: [write('a.txt', '1\n2\n'), write('b.txt', '1\n2\n'), submit],
      config: { sideEffects: { maxLinesChanged: 3 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: 'write_file would bring the lines changed to 4, over the cap of 3',
      limit: 'lines_changed',
    });
    expect(r.server.requests.length).toBe(2);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok']);
    expect(r.exists('b.txt')).toBe(false);
  });

  it('protected paths: a write to a protected glob never runs', async () => {
    const r = await runScripted({
      script: [
        {
          toolCalls: [
            {
              name: 'write_file',
              arguments: { path: 'secrets/key.pem', content: 'x\n', createParents: true },
            },
          ],
        },
        submit,
      ],
      config: { sideEffects: { protectedPaths: ['secrets/**', '.github/**'] } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: 'write_file would change secrets/key.pem, a protected path',
      limit: 'protected_path',
    });
    expect(r.server.requests.length).toBe(1);
    expect(r.toolCalls).toEqual([]);
    expect([r.exists('secrets/key.pem'), r.exists('secrets')]).toEqual([false, false]);
  });

  it('a git tool is sized by its own preview: a hard reset that reverts a change counts its lines', async () => {
    const r = await runScripted({
      script: [
        write('README.md', '# changed\n'),
        { toolCalls: [{ name: 'git_reset', arguments: { target: 'HEAD', mode: 'hard' } }] },
        submit,
      ],
      config: { sideEffects: { maxLinesChanged: 2 } },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message: 'git_reset would bring the lines changed to 4, over the cap of 2',
      limit: 'lines_changed',
    });
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok']);
    // The reset never ran: the uncommitted change is as it was.
    expect(readFileSync(path.join(r.h.repo.dir, 'README.md'), 'utf8')).toBe('# changed\n');
  });

  it('a mutating tool of an external server without a preview counts as crossing', async () => {
    const bin = fixtureBin(['--root', '.', '--log-level', 'error']);
    const r = await runScripted({
      script: [
        { toolCalls: [{ name: 'set_content', arguments: { path: 'a.txt', content: 'a\n' } }] },
        submit,
      ],
      config: {
        servers: { ...builtinServers, fixture: { command: bin.command, args: [...bin.args], env: {} } },
        agents: {
          planning: { model: 'gpt', tools: { filesystem: readTools } },
          coding: { model: 'gpt', tools: { fixture: ['set_content'] } },
          review: { model: 'gpt', tools: { filesystem: readTools } },
        },
        sideEffects: { maxFilesChanged: 10 },
      },
    });
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message:
        'the effect of set_content cannot be computed before it runs (set_content is a tool of an external server that is not read-only and cannot preview its effect), so it counts as crossing the files changed cap',
      limit: 'files_changed',
    });
    expect(r.toolCalls).toEqual([]);
    expect(r.exists('a.txt')).toBe(false);
  });
});
