import {
  loadConfig,
  openTaskStore,
  parseTaskFile,
  resumeTask,
  runTask,
  type Model,
  type ModelRequest,
  type ModelToolCall,
} from '@keel/supervisor';
import type { Project } from './world.js';

/**
 * A model object of the attack's making, run in the supervisor's own process: a provider whose
 * parser hands tool-call arguments over as the model wrote them, with no JSON text in between
 * (the AI SDK's parser refuses a `__proto__` member before Keel sees it; another provider need
 * not). `answer` picks the call for a request; `undefined` hands in an empty change.
 */
export function modelOf(answer: (request: ModelRequest) => Omit<ModelToolCall, 'id'> | undefined): Model {
  return {
    provider: 'attacker',
    model: 'test-model',
    async generate(request, context) {
      const call = answer(request) ?? {
        name: 'submit_change',
        arguments: { version: 'change.v1', summary: 'done', files: [], commit: null },
      };
      return {
        text: '',
        toolCalls: [{ id: `call_${context.step}`, ...call }],
        usage: { inputTokens: 10, outputTokens: 10 },
        finishReason: 'tool_calls',
        responseModel: 'test-model',
        raw: null,
      };
    },
  };
}

const task = parseTaskFile(
  {
    type: 'attack',
    title: 'an attack',
    description: 'do what the model says',
    mode: 'single',
    tests: null,
    deploy: null,
    limits: { steps: 10 },
  },
  'an attack',
);

/** Opens the project's store for one in-process run and closes it after. */
async function withStore<T>(p: Project, fn: (options: Parameters<typeof runTask>[0]) => Promise<T>) {
  const loaded = loadConfig(p.configFile);
  const store = await openTaskStore(loaded, {});
  try {
    return await fn({ loaded, store, env: {}, task });
  } finally {
    await store.close();
  }
}

/** `keel run` in this process, the config's `gpt` model replaced by `model`: the run's id and status. */
export const runInProcess = (p: Project, model: Model) =>
  withStore(p, async (options) => {
    const { run } = await runTask({ ...options, models: { gpt: model } });
    return { id: run.id, status: run.status };
  });

/** `keel resume TASK [--accept-changed-config] [--accept-divergence]` in this process, with `model`. */
export const resumeInProcess = (
  p: Project,
  taskId: string,
  model: Model,
  accept: { changedConfig?: boolean; divergence?: boolean } = {},
) =>
  withStore(p, async ({ task: _task, ...options }) => {
    const { run } = await resumeTask({
      ...options,
      taskId,
      reason: 'keel resume',
      models: { gpt: model },
      acceptChangedConfig: accept.changedConfig === true,
      acceptDivergence: accept.divergence === true,
    });
    return { id: run.id, status: run.status };
  });
