import { startScriptedChatServer, type ChatScript } from '@keel/testing/chat-server';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import {
  applyElisions,
  compact,
  messageBytes,
  type ContextDecision,
  type ContextPolicy,
} from '../src/engine/context/compact.js';
import { recall } from '../src/engine/context/recall.js';
import { runTask } from '../src/engine/runTask.js';
import type { ModelMessage } from '../src/models/model.js';
import { replayTask } from '../src/replay/replay.js';
import { formatShow } from '../src/cli/format.js';
import { builtinServers, createHarness, task } from './helpers.js';

const system: ModelMessage = { role: 'system', content: 'you are a test agent' };
const input: ModelMessage = { role: 'user', content: 'the task, with a plan.v1 handed in' };
/** A conversation of `n` read turns, each result `bytes` long and naming its turn. */
function conversation(n: number, bytes: number): ModelMessage[] {
  const messages: ModelMessage[] = [system, input];
  for (let i = 0; i < n; i++) {
    messages.push({
      role: 'assistant',
      content: '',
      toolCalls: [{ id: `c${i}`, name: 'read_file', arguments: { path: `f${i}.txt` } }],
    });
    messages.push({
      role: 'tool',
      toolCallId: `c${i}`,
      toolName: 'read_file',
      content: `turn ${i} `.padEnd(bytes, 'x'),
      isError: false,
      structured: { turn: i },
    });
  }
  return messages;
}
const policy: ContextPolicy = { window: 10_000, target: 0.6, low: 0.4, bytesPerToken: 4, maxTokens: 1000 };

describe('compaction (a pure function of the messages)', () => {
  it('under the target sends the messages as they are and cuts nothing', () => {
    const messages = conversation(3, 4000);
    const { messages: sent, decision } = compact(messages, [], [], undefined, policy);
    expect(sent).toEqual(messages);
    expect(decision).toEqual({
      window: 10_000,
      target: 0.6,
      low: 0.4,
      bytesPerToken: 4,
      reason: 'under_target',
      // No count reported yet: all the bytes (the empty tool list is `[]`, 2 bytes) at 4 per token.
      estimateBefore: Math.ceil((messageBytes(messages) + 2) / 4),
      estimate: Math.ceil((messageBytes(messages) + 2) / 4),
      cut: [],
      elided: [],
      fits: true,
    });
  });

  it('crossing the target cuts the oldest results to the low mark, keeps every message and the latest two turns', () => {
    const messages = conversation(8, 4000);
    // 8 results of 4000 bytes: ~8400 tokens > 6000; cut to <= 4000 from the oldest.
    const { messages: sent, decision } = compact(messages, [], [], undefined, policy);
    expect(decision.reason).toBe('crossed_target');
    expect(decision.elided).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    expect(decision.cut.map((c) => [c.toolCallId, c.tool, c.bytes])).toEqual([
      ['c0', 'read_file', 4000],
      ['c1', 'read_file', 4000],
      ['c2', 'read_file', 4000],
      ['c3', 'read_file', 4000],
      ['c4', 'read_file', 4000],
    ]);
    expect(decision.estimate).toBeLessThanOrEqual(4000);
    expect(decision.estimate).toBe(Math.ceil((messageBytes(sent) + 2) / 4));
    // Nothing dropped: same roles, same ids, system prompt and task untouched.
    expect(sent.map((m) => (m.role === 'tool' ? m.toolCallId : m.role))).toEqual(
      messages.map((m) => (m.role === 'tool' ? m.toolCallId : m.role)),
    );
    expect(sent.slice(0, 2)).toEqual([system, input]);
    expect(sent.slice(-6)).toEqual(messages.slice(-6));
    expect(sent[3]).toEqual({
      role: 'tool',
      toolCallId: 'c0',
      toolName: 'read_file',
      isError: false,
      content: `[elided: read_file {"path":"f0.txt"} gave 4000 B, sha256 ${decision.cut[0]!.sha256.slice(0, 16)}; recall {"ref":"c0"}]`,
    });
  });

  it('keeps the prefix byte-stable between cuts (hysteresis), then cuts again in a batch', () => {
    const first = conversation(8, 4000);
    const cut = compact(first, [], [], undefined, policy);
    const anchor = { tokens: cut.decision.estimate, bytes: messageBytes(cut.messages) };
    const next = conversation(9, 4000);
    const after = compact(next, [], cut.decision.elided, anchor, policy);
    expect(after.decision.reason).toBe('under_target');
    expect(after.decision.cut).toEqual([]);
    expect(JSON.stringify(after.messages).startsWith(JSON.stringify(cut.messages).slice(0, -1))).toBe(true);
    const later = conversation(12, 4000);
    const again = compact(later, [], after.decision.elided, anchor, policy);
    expect(again.decision.reason).toBe('crossed_target');
    expect(again.decision.cut.map((c) => c.toolCallId)).toEqual(['c5', 'c6', 'c7', 'c8']);
    expect(again.decision.estimate).toBeLessThanOrEqual(4000);
  });

  it('cut harder (after a provider refused) elides all but the latest turn; a recorded decision applies as it is', () => {
    const messages = conversation(5, 4000);
    const { decision } = compact(messages, [], [], undefined, policy, true);
    expect(decision.reason).toBe('provider_refused');
    expect(decision.elided).toEqual(['c0', 'c1', 'c2', 'c3']);
    const recorded: ContextDecision = { ...decision, elided: ['c2'] };
    const applied = applyElisions(messages, new Set(recorded.elided));
    expect(applied.filter((m) => m.role === 'tool' && m.content.startsWith('[elided')).length).toBe(1);
  });

  it('recall pages an earlier result and names what it cannot find', () => {
    const messages = conversation(2, 20_000);
    const first = recall(messages, { ref: 'c1' });
    expect(first).toMatchObject({
      ok: true,
      structured: { ref: 'c1', tool: 'read_file', offset: 0, total: 20_000, nextOffset: 16_000 },
    });
    const second = recall(messages, { ref: 'c1', offset: 16_000 });
    expect(second.ok && second.text).toBe(`${'x'.repeat(4000)}\n[recall: characters 16000-20000 of 20000]`);
    expect(recall(messages, { ref: 'nope' })).toEqual({
      ok: false,
      error: {
        code: 'NOT_FOUND',
        message: "no earlier tool result has ref 'nope'",
        hint: 'use the ref exactly as an elided result’s stub names it',
      },
    });
    expect(recall(messages, { ref: 'c1', offset: 30_000 })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_ARGUMENT' },
    });
  });
});

const window = 32_768;
/** Ten files of 8 KB; the second holds the value the task needs at its end. */
const files = Object.fromEntries(
  Array.from({ length: 10 }, (_, i) => [
    `f${i}.txt`,
    `${i === 1 ? 'the value is 4242\n' : ''}${`line of file ${i}\n`.repeat(8192 / 16)}`.slice(0, 8192),
  ]),
);
const submit = (summary: string) => ({
  toolCalls: [
    { name: 'submit_change', arguments: { version: 'change.v1', summary, files: [], commit: null } },
  ],
});
const lastToolText = (body: { messages: Array<{ role: string; content: string }> }) =>
  body.messages.filter((m) => m.role === 'tool').at(-1)?.content ?? '';
/** Reads the ten files, recalls the second, hands in the value it read (or says it lost it). */
const readThenRecall: ChatScript = ({ index, body }) => {
  if (index < 10) return { toolCalls: [{ name: 'read_file', arguments: { path: `f${index}.txt` } }] };
  if (index === 10) return { toolCalls: [{ name: 'recall', arguments: { ref: 'call_1_0' } }] };
  return submit(lastToolText(body).includes('the value is 4242') ? 'value 4242' : 'lost the value');
};

async function compactedWorld(
  script: ChatScript,
  serverWindow = window,
  /** `null`: no window in the config. */
  configWindow: number | null = window,
) {
  const server = await startScriptedChatServer({ script, contextWindow: serverWindow, promptCache: true });
  onTestFinished(() => server.close());
  const agent = { model: 'gpt', tools: {} };
  const h = await createHarness({
    files,
    config: {
      models: {
        gpt: {
          provider: 'openai-compatible',
          model: 'test-model',
          baseURL: server.url,
          ...(configWindow === null ? {} : { contextWindow: configWindow }),
        },
      },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      // Git records the starting state a replay rebuilds.
      servers: { filesystem: builtinServers.filesystem, git: builtinServers.git },
      agents: { planning: agent, coding: agent, review: agent },
      // Reading is all this task does: no progress for many steps is the point, not a loop.
      loops: { repeat: 3, pingPong: 3, noProgressSteps: 100, onLoop: 'stop' },
    },
  });
  const outcome = await runTask({
    loaded: h.loaded,
    store: h.store,
    env: {},
    task: task({ mode: 'single', tests: null, deploy: null }),
  });
  const modelCalls = await h.store.listModelCalls(outcome.run.id);
  return { h, server, run: outcome.run, modelCalls };
}

const decisionOf = (record: { request: unknown }) => (record.request as { context: ContextDecision }).context;

describe('a task in a bounded context window', () => {
  it('keeps every request inside the window by eliding older results, and recalls one when it needs it', async () => {
    const { h, server, run, modelCalls } = await compactedWorld(readThenRecall);
    expect(run.status).toBe('succeeded');
    const accepted = (await h.store.listEvents(run.id)).find((e) => e.type === 'contract_accepted');
    expect((accepted!.data as { value: { summary: string } }).value.summary).toBe('value 4242');
    // The server refuses a request over its window: none was refused, and every one fit.
    expect(server.requests.map((r) => r.response?.status)).toEqual(Array(12).fill(200));
    for (const r of server.requests)
      expect(
        Math.ceil(Buffer.byteLength(JSON.stringify(r.body)) / 4) + r.body.max_tokens,
      ).toBeLessThanOrEqual(window);
    const decisions = modelCalls.map(decisionOf);
    expect(decisions.map((d) => d.reason)).toMatchInlineSnapshot(`
      [
        "under_target",
        "under_target",
        "under_target",
        "under_target",
        "under_target",
        "crossed_target",
        "under_target",
        "under_target",
        "crossed_target",
        "under_target",
        "crossed_target",
        "under_target",
      ]
    `);
    expect(decisions.map((d) => d.cut.map((c) => c.toolCallId))).toMatchInlineSnapshot(`
      [
        [],
        [],
        [],
        [],
        [],
        [
          "call_0_0",
          "call_1_0",
          "call_2_0",
        ],
        [],
        [],
        [
          "call_3_0",
          "call_4_0",
          "call_5_0",
        ],
        [],
        [
          "call_6_0",
          "call_7_0",
        ],
        [],
      ]
    `);
    // Step 11 (request 10) carries f1's result as a stub; the recall's answer is the result itself.
    const request10 = server.requests[10]!.body.messages as Array<{
      role: string;
      tool_call_id?: string;
      content: string;
    }>;
    expect(request10.find((m) => m.tool_call_id === 'call_1_0')?.content).toMatch(
      /^\[elided: read_file \{"path":"f1.txt"\} gave \d+ B, sha256 [0-9a-f]{16}; recall \{"ref":"call_1_0"\}\]$/,
    );
    expect(lastToolText(server.requests[11]!.body)).toContain('the value is 4242');
    const tools = await h.store.listToolCalls(run.id);
    expect(tools.filter((t) => t.tool === 'recall').map((t) => [t.server, t.outcome, t.arguments])).toEqual([
      ['keel', 'ok', { ref: 'call_1_0' }],
    ]);
    const show = formatShow((await h.store.getTask(run.id))!, modelCalls, tools, [], Date.now());
    expect(show.split('\n').filter((l) => l.includes('context:'))).toMatchInlineSnapshot(`
      [
        "        context: crossed 60% of 32768, cut to 40%; ~21424 → ~15309 tokens; elided read_file call_0_0 (7738 B, sha256 a76401d39fe4), read_file call_1_0 (7756 B, sha256 ed16b971ac50), read_file call_2_0 (7738 B, sha256 4132d94e9015); 3 elided in all",
        "        context: crossed 60% of 32768, cut to 40%; ~21659 → ~15548 tokens; elided read_file call_3_0 (7738 B, sha256 0f9b836756ab), read_file call_4_0 (7738 B, sha256 57a3805ff0b0), read_file call_5_0 (7738 B, sha256 2b16f9ac0dd0); 6 elided in all",
        "        context: crossed 60% of 32768, cut to 40%; ~19781 → ~15707 tokens; elided read_file call_6_0 (7738 B, sha256 8c842d7158ec), read_file call_7_0 (7738 B, sha256 e7a0a8f96223); 8 elided in all",
      ]
    `);
    // Cached tokens were reported for the stable prefix between cuts.
    const cached = server.requests.map(
      (r) =>
        (r.response!.body as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage
          .prompt_tokens_details.cached_tokens,
    );
    expect(cached).toMatchInlineSnapshot(`
      [
        0,
        10752,
        12928,
        14976,
        17152,
        10752,
        15232,
        17280,
        11008,
        15488,
        11264,
        15616,
      ]
    `);
    // The run record carries their sum, which `keel stats` reads as the cached share of input.
    expect(run.tokens.cachedInput).toBe(cached.reduce((a, b) => a + b, 0));
  });

  it('without a window (as before) the same task grows until the provider refuses it', async () => {
    const { server, run } = await compactedWorld(readThenRecall, window, null);
    expect(run.status).toBe('error');
    expect(server.requests.map((r) => r.response?.status)).toMatchInlineSnapshot(`
      [
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        400,
      ]
    `);
  });

  it('replays a compacted run identically, applying the recorded elisions even under another window', async () => {
    const { h, run } = await compactedWorld(readThenRecall);
    const config = parse(readFileSync(h.loaded.file, 'utf8'));
    // A model that would be asked nothing, under a window and estimate that would cut elsewhere.
    config.models.gpt = { ...config.models.gpt, contextWindow: 1_000_000, bytesPerToken: 3 };
    const variant = path.join(h.dir, 'replay.config.yaml');
    writeFileSync(variant, stringify(config));
    const report = await replayTask({
      store: h.store,
      taskId: run.id,
      loaded: loadConfig(variant),
      env: {},
      keep: true,
    });
    onTestFinished(() => rmSync(report.dir!, { recursive: true, force: true }));
    expect([report.identical, report.divergence, report.replayedSteps]).toEqual([true, null, 12]);
    const replayStore = createSqliteTaskStore(path.join(report.dir!, '.replay', 'state'));
    onTestFinished(() => replayStore.close());
    const replayed = await replayStore.listModelCalls(report.replayTaskId);
    const recorded = await h.store.listModelCalls(run.id);
    expect(replayed.map(decisionOf)).toEqual(recorded.map(decisionOf));
    // What the model read, byte for byte (a structured result's mtime is the copy's, and is never sent).
    const sent = (m: { request: unknown }) =>
      (m.request as { messages: ModelMessage[] }).messages.map((x) =>
        x.role === 'tool' ? { ...x, structured: undefined } : x,
      );
    expect(replayed.map(sent)).toEqual(recorded.map(sent));
  });

  it('compacts harder and retries once when the provider refuses a request as too long, and records both tries', async () => {
    // The provider's window is smaller than the config says: the estimate thinks step 5 fits.
    const script: ChatScript = ({ index }) =>
      index < 6
        ? { toolCalls: [{ name: 'read_file', arguments: { path: `f${index}.txt` } }] }
        : submit('read');
    const { h, server, run, modelCalls } = await compactedWorld(script, 20_000);
    expect(run.status).toBe('succeeded');
    const refused = server.requests.filter((r) => r.response?.status === 400);
    expect(refused.map((r) => (r.response!.body as { error: { code: string } }).error.code)).toEqual(
      refused.map(() => 'context_length_exceeded'),
    );
    expect(refused.length).toBeGreaterThan(0);
    const firstRefused = modelCalls.find((m) => m.error !== null)!;
    const retry = modelCalls.find((m) => m.step === firstRefused.step && m.error === null)!;
    expect([firstRefused.attempt, retry.attempt, decisionOf(retry).reason]).toEqual([
      1,
      2,
      'provider_refused',
    ]);
    expect(firstRefused.error).toMatch(
      /HTTP 400: This model's maximum context length is 20000 tokens.*\(context_length_exceeded\)$/,
    );
    const events = await h.store.listEvents(run.id);
    expect(
      events.filter((e) => e.type === 'context_refused').map((e) => (e.data as { step: number }).step),
    ).toEqual(modelCalls.filter((m) => m.error !== null).map((m) => m.step));
  });

  it('ends the task at its context_window limit when the request cannot fit even with everything elided', async () => {
    const { server, run } = await compactedWorld(readThenRecall, window, 3000);
    expect(server.requests).toEqual([]);
    expect([run.status, run.outcome.limit]).toEqual(['limit', 'context_window']);
    expect(run.outcome.message).toMatchInlineSnapshot(
      `"step 1's request cannot fit the model's context window of 3000 tokens: about 10531 input tokens + 4096 output reserved, with every older tool result (0) elided; the system prompt, the task and the latest turn are never elided — raise models.NAME.contextWindow if the model has more, or lower the agent's maxTokens"`,
    );
  });
});
