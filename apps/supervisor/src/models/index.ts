import { KeelError } from '@keel/kit/core';
import type { ModelConfig } from '../config/schema.js';
import { createAnthropicModel } from './anthropic.js';
import type { Fetch } from './httpFetch.js';
import type { Model } from './model.js';
import { createOpenAICompatibleModel } from './openaiCompatible.js';
import { createPlaybookModel, type Playbook } from './playbook.js';

/** Builds the model a config entry names. The playbook comes from the task file. */
export function createModel(
  name: string,
  config: ModelConfig,
  options: {
    env: NodeJS.ProcessEnv;
    playbook: Playbook | undefined;
    /** How requests reach the provider; default a {@link createHttpFetch} of the model's own. */
    fetch?: Fetch;
  },
): Model {
  const apiKey = (envName: string | undefined) => {
    if (envName === undefined) return undefined;
    const value = options.env[envName];
    if (value === undefined || value === '')
      throw new KeelError('INVALID_ARGUMENT', `models.${name}.apiKeyEnv: ${envName} is not set`, {
        hint: `export ${envName}=... before keel run`,
      });
    return value;
  };
  switch (config.provider) {
    case 'playbook':
      if (options.playbook === undefined)
        throw new KeelError(
          'INVALID_ARGUMENT',
          `model '${name}' is the playbook, but the task file has no playbook`,
          {
            hint: 'add a playbook: section to the task file, or point the agents at a real model in keel.config.yaml',
          },
        );
      return createPlaybookModel(options.playbook, name);
    case 'openai-compatible': {
      const key = apiKey(config.apiKeyEnv);
      return createOpenAICompatibleModel({
        baseURL: config.baseURL,
        model: config.model,
        ...(key === undefined ? {} : { apiKey: key }),
        ...(config.promptCacheKey ? { promptCacheKey: true } : {}),
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      });
    }
    case 'anthropic': {
      const key = apiKey(config.apiKeyEnv);
      return createAnthropicModel({
        model: config.model,
        ...(config.baseURL === undefined ? {} : { baseURL: config.baseURL }),
        ...(key === undefined ? {} : { apiKey: key }),
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      });
    }
  }
}

export { createPlaybookModel, playbookSchema } from './playbook.js';
export type { Playbook } from './playbook.js';
export { createOpenAICompatibleModel } from './openaiCompatible.js';
export { createAnthropicModel } from './anthropic.js';
export { createReplayModel } from './replay.js';
export { createHttpFetch, type Fetch, type HttpFetchOptions } from './httpFetch.js';
export type {
  Model,
  ModelMessage,
  ModelReply,
  ModelRequest,
  ModelToolCall,
  ModelToolDefinition,
  ModelUsage,
} from './model.js';
