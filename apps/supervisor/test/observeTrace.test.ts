import { describe, expect, it } from 'vitest';
import { runTask } from '../src/engine/runTask.js';
import { buildTrace, formatTrace, type TraceSpan } from '../src/observe/trace.js';
import { createHarness, task } from './helpers.js';

const shape = (span: TraceSpan): unknown => [
  `${span.kind}:${span.name}:${span.outcome}`,
  ...span.children.map(shape),
];

describe('keel trace', () => {
  it('rebuilds task → agents → model calls → tool calls from the store, each inside its parent', async () => {
    const h = await createHarness({ files: { 'notes.md': 'one\n' } });
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      task: task({
        mode: 'orchestrated',
        tests: null,
        deploy: null,
        playbook: {
          planning: [
            [
              { call: 'read_file', args: { path: 'notes.md' } },
              {
                submit: {
                  version: 'plan.v1',
                  summary: 'add a line',
                  steps: [{ id: 's1', description: 'append', files: ['notes.md'] }],
                  acceptance: ['two lines'],
                },
              },
            ],
          ],
          coding: [
            [
              { call: 'write_file', args: { path: 'notes.md', content: 'one\ntwo\n' } },
              { call: 'no_such_tool', args: {} },
              {
                submit: {
                  version: 'change.v1',
                  summary: 'two lines',
                  files: [{ path: 'notes.md', status: 'modified', linesAdded: 1, linesRemoved: 0 }],
                  commit: null,
                },
              },
            ],
          ],
          review: [[{ submit: { version: 'review.v1', verdict: 'approve', summary: 'fine', comments: [] } }]],
        },
      }),
    });
    expect(run.status).toBe('succeeded');
    const [stored, models, tools, events] = await Promise.all([
      h.store.getTask(run.id),
      h.store.listModelCalls(run.id),
      h.store.listToolCalls(run.id),
      h.store.listEvents(run.id),
    ]);
    const trace = buildTrace(stored!, models, tools, events);
    expect(shape(trace)).toEqual([
      `task:task ${run.id}:ok`,
      ['setup:setup:ok'],
      [
        'agent:invoke_agent planning:ok',
        ['chat:chat playbook:ok', ['tool:execute_tool filesystem.read_file:ok']],
        ['chat:chat playbook:ok'],
      ],
      [
        'agent:invoke_agent coding:ok',
        ['chat:chat playbook:ok', ['tool:execute_tool filesystem.write_file:ok']],
        ['chat:chat playbook:ok', ['tool:execute_tool no_such_tool:UNKNOWN_TOOL']],
        ['chat:chat playbook:ok'],
      ],
      ['agent:invoke_agent review:ok', ['chat:chat playbook:ok']],
    ]);
    expect(trace.attributes).toEqual({
      type: 'test',
      mode: 'orchestrated',
      status: 'succeeded',
      steps: 6,
      inputTokens: run.tokens.input,
      outputTokens: run.tokens.output,
      costUsd: 0,
    });
    // Every span lies inside its agent (or the task), a tool call starts after the model call that
    // asked for it (1 ms slack: event times are whole milliseconds).
    const inside = (span: TraceSpan, frame: TraceSpan) => {
      for (const child of span.children) {
        const after = span.kind === 'chat' ? span.startMs + span.durationMs - 1 : frame.startMs - 1;
        expect(child.startMs).toBeGreaterThanOrEqual(after);
        expect(child.startMs).toBeGreaterThanOrEqual(frame.startMs - 1);
        expect(child.startMs + child.durationMs).toBeLessThanOrEqual(frame.startMs + frame.durationMs + 1);
        inside(child, child.kind === 'chat' ? frame : child);
      }
    };
    inside(trace, trace);
    const chats = trace.children.flatMap((a) => a.children).filter((s) => s.kind === 'chat');
    expect(chats.map((c) => [c.attributes['step'], c.attributes['inputTokens']])).toEqual(
      models.map((m) => [m.step, m.inputTokens]),
    );
    const text = formatTrace(trace);
    expect(text.split('\n').length).toBe(1 + 1 + 1 + 3 + 1 + 3 + 1 + 2 + 2);
    expect(text).toContain('execute_tool no_such_tool  UNKNOWN_TOOL, 0 B');
  });
});
