import { z } from 'zod';
import { reasoningEfforts } from '../models/model.js';
import { limitKinds } from '@keel/contracts';

export const agentRoles = ['planning', 'coding', 'review', 'deploy'] as const;
export type AgentRole = (typeof agentRoles)[number];

const positiveInt = z.number().int().positive();

/** Results that carry no content from outside the task: its deploy configuration, or an echo of the call. */
const trustedByDefault = [
  'list_environments',
  'deploy_status',
  'list_releases',
  'write_file',
  'create_directory',
  'git_add',
  'git_commit',
];

/** Per-task hard limits; every one is checked before each model call and tool call. */
export const limitsSchema = z
  .object({
    steps: positiveInt.describe('model calls across all agents'),
    tokens: positiveInt.describe('input + output tokens across all model calls'),
    wallClockMs: positiveInt.describe('from the task start; propagated as cancellation'),
    toolCalls: positiveInt,
    costUsd: z.number().nonnegative().describe('money, from the price table'),
    reviewRounds: positiveInt.describe('coding/review rounds before the task stops'),
    testRounds: positiveInt.describe('test runs before the task stops'),
    contractRetries: z.number().int().nonnegative().describe('invalid final-tool calls an agent may retry'),
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

export const defaultLimits: Limits = {
  steps: 60,
  tokens: 2_000_000,
  wallClockMs: 15 * 60_000,
  toolCalls: 200,
  costUsd: 5,
  reviewRounds: 3,
  testRounds: 3,
  contractRetries: 2,
};

export const sideEffectsSchema = z
  .object({
    maxFilesChanged: positiveInt.optional().describe('distinct files a task may change'),
    maxLinesChanged: positiveInt.optional().describe('added + removed lines across the task'),
    protectedPaths: z.array(z.string().min(1)).default([]).describe('globs no call may touch'),
  })
  .strict();
export type SideEffects = z.infer<typeof sideEffectsSchema>;

export const loopsSchema = z
  .object({
    repeat: z.number().int().min(2).default(3).describe('the same call this many times in a row'),
    pingPong: z.number().int().min(2).default(3).describe('A-B cycles in a row'),
    noProgressSteps: z
      .number()
      .int()
      .min(2)
      .default(10)
      .describe('steps without new workspace state or contract'),
    onLoop: z.enum(['stop', 'escalate']).default('escalate'),
  })
  .strict();
export type Loops = z.infer<typeof loopsSchema>;

const serverSchema = z.union(
  [
    z
      .object({
        builtin: z
          .enum(['filesystem', 'git', 'test-runner', 'deploy'])
          .describe('a Keel server shipped with keel'),
        args: z.array(z.string()).default([]),
        env: z.record(z.string(), z.string()).default({}),
      })
      .strict(),
    z
      .object({
        command: z.string().min(1),
        args: z.array(z.string()).default([]),
        env: z.record(z.string(), z.string()).default({}),
        cwd: z.string().optional(),
      })
      .strict(),
    z
      .object({
        url: z.url(),
        tokenEnv: z.string().optional().describe('environment variable holding a bearer token'),
      })
      .strict(),
  ],
  {
    error:
      'a server is { builtin: filesystem | git | test-runner | deploy, args? }, { command, args?, env?, cwd? } or { url, tokenEnv? }',
  },
);
export type ServerConfig = z.infer<typeof serverSchema>;

const usageWhenMissing = z
  .enum(['reservation', 'estimate'])
  .default('reservation')
  .describe(
    "how a reply is counted when the provider leaves its token usage out: at the reservation (input bound + max_tokens), or at an estimate (the reply's bytes, capped at max_tokens); never at zero",
  );

/** The fields every provider-backed model takes: its window, and how a reply without usage is counted. */
const providerModelFields = {
  contextWindow: positiveInt
    .optional()
    .describe(
      "the model's context window in tokens (input + output); when set, older tool results are elided to keep each request inside it",
    ),
  bytesPerToken: z
    .number()
    .positive()
    .default(4)
    .describe(
      'bytes of JSON per token the window estimate assumes for what was added since the last reported count',
    ),
  usageWhenMissing,
};

const modelSchema = z.discriminatedUnion('provider', [
  z.object({ provider: z.literal('playbook') }).strict(),
  z
    .object({
      provider: z.literal('openai-compatible'),
      model: z.string().min(1),
      baseURL: z.url(),
      apiKeyEnv: z.string().optional(),
      promptCacheKey: z
        .boolean()
        .default(false)
        .describe(
          'send OpenAI’s prompt_cache_key (task and agent), so one agent’s requests reach the same cache; for servers that take it',
        ),
      ...providerModelFields,
    })
    .strict(),
  z
    .object({
      provider: z.literal('anthropic'),
      model: z.string().min(1),
      baseURL: z.url().optional(),
      apiKeyEnv: z.string().optional(),
      ...providerModelFields,
    })
    .strict(),
]);
export type ModelConfig = z.infer<typeof modelSchema>;

const priceSchema = z
  .object({
    inputPerMTok: z.number().nonnegative().describe('USD per million input tokens'),
    outputPerMTok: z.number().nonnegative().describe('USD per million output tokens'),
    cachedInputPerMTok: z
      .number()
      .nonnegative()
      .optional()
      .describe('USD per million input tokens read from the provider’s prompt cache; default inputPerMTok'),
    cacheWritePerMTok: z
      .number()
      .nonnegative()
      .optional()
      .describe(
        'USD per million input tokens written to the prompt cache (Anthropic: 1.25-2x input); default inputPerMTok',
      ),
  })
  .strict();
export type Price = z.infer<typeof priceSchema>;

const agentSchema = z
  .object({
    model: z.string().min(1).describe('a key of `models`'),
    prompt: z
      .string()
      .optional()
      .describe('system prompt file, relative to the config; default: the built-in one'),
    tools: z
      .record(z.string(), z.array(z.string().min(1)))
      .describe('per server: the tools this agent may call ("*" for all)'),
    maxTokens: positiveInt
      .default(4096)
      .describe('output tokens per model call, reasoning included (reserved and priced as output)'),
    reasoningEffort: z
      .enum(reasoningEfforts)
      .optional()
      .describe(
        "how hard the model reasons: OpenAI-compatible `reasoning_effort`, Anthropic's thinking budget (1024, 4096, 16384 tokens, within maxTokens); absent: the provider's default",
      ),
    limits: z
      .object({ steps: positiveInt.optional(), tokens: positiveInt.optional() })
      .strict()
      .default({})
      .describe("this agent's own caps, within the task's"),
    context: z
      .object({
        target: z
          .number()
          .gt(0)
          .lt(1)
          .default(0.6)
          .describe(
            "share of the model's context window a request may fill before older tool results are elided",
          ),
        cutTo: z
          .number()
          .gt(0)
          .lt(1)
          .default(0.4)
          .describe(
            'share of the window a cut brings the request down to (below target: cuts come in batches)',
          ),
      })
      .strict()
      .refine((c) => c.cutTo < c.target, { message: 'context.cutTo must be below context.target' })
      .default({ target: 0.6, cutTo: 0.4 })
      .describe("how this agent uses its model's context window (when the model has contextWindow)"),
  })
  .strict();
export type AgentConfig = z.infer<typeof agentSchema>;

/** `keel.config.yaml` as validated. Paths are relative to the config file's directory. */
export const configSchema = z
  .object({
    version: z.literal(1),
    workspace: z.string().default('.').describe('the project the servers are rooted at'),
    stateDir: z
      .string()
      .optional()
      .describe(
        'task store and server state; default: a directory of this project under $XDG_STATE_HOME/keel/projects (~/.local/state), outside the workspace',
      ),
    store: z
      .string()
      .optional()
      .describe(
        'a postgres:// URL for a task store shared by several keel processes (KEEL_DATABASE_URL overrides it); default: SQLite in stateDir',
      ),
    servers: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/), serverSchema),
    models: z.record(z.string(), modelSchema).default({ playbook: { provider: 'playbook' } }),
    prices: z.record(z.string(), priceSchema).default({}),
    agents: z
      .object({
        planning: agentSchema,
        coding: agentSchema,
        review: agentSchema,
        deploy: agentSchema.optional(),
      })
      .strict(),
    limits: limitsSchema.partial().default({}),
    sideEffects: sideEffectsSchema.default({ protectedPaths: [] }),
    loops: loopsSchema.default({ repeat: 3, pingPong: 3, noProgressSteps: 10, onLoop: 'escalate' }),
    irreversible: z
      .object({
        tools: z.array(z.string()).default([]).describe('more tools to classify irreversible'),
        paths: z
          .array(z.string().min(1))
          .default([])
          .describe('globs: a mutating call that would change a matching path is irreversible'),
      })
      .strict()
      .default({ tools: [], paths: [] }),
    approvals: z
      .object({
        expiresHours: positiveInt.default(24).describe('how long a request for approval stays open'),
        preApproved: z
          .array(z.object({ tool: z.string().min(1) }).strict())
          .default([])
          .describe('irreversible tools a task may use without asking, while it has read nothing untrusted'),
        trustedTools: z
          .array(z.string().min(1))
          .default(trustedByDefault)
          .describe(
            "results that do not taint a task, as `server.tool`, or a bare tool name for Keel's own (builtin) servers only; trusted only when the result echoes the call (no prose the arguments did not write)",
          ),
        signingKey: z
          .string()
          .optional()
          .describe('Ed25519 private key (PEM) that signs deploy approval tokens after a human approves'),
      })
      .strict()
      .default({
        expiresHours: 24,
        preApproved: [],
        trustedTools: trustedByDefault,
      }),
    escalateLimits: z
      .array(z.enum(limitKinds))
      .default([])
      .describe('limits that escalate to a human (who may raise them) instead of stopping the task'),
    retentionDays: positiveInt.default(30),
    telemetry: z
      .object({ serviceName: z.string().default('keel') })
      .strict()
      .default({ serviceName: 'keel' }),
  })
  .strict();
export type KeelConfig = z.infer<typeof configSchema>;
