/** A model `keel init --model` can point every agent at: its key in `models:`, its entry, its price. */
interface ModelPreset {
  key: string;
  entry: string;
  /** The model name and USD per million input and output tokens. */
  price?: [model: string, input: number, output: number];
  /** Shown above the entry. */
  note: string;
}

/** `keel init --model NAME`: the models a first task is likely to use. */
export const modelPresets = {
  playbook: {
    key: 'playbook',
    entry: '{ provider: playbook }',
    note: "plays the task file's script: no network, deterministic",
  },
  openai: {
    key: 'gpt',
    entry:
      '{ provider: openai-compatible, model: gpt-4.1-mini, baseURL: https://api.openai.com/v1, apiKeyEnv: OPENAI_API_KEY }',
    price: ['gpt-4.1-mini', 0.4, 1.6],
    note: 'OpenAI; the key is read from $OPENAI_API_KEY',
  },
  anthropic: {
    key: 'claude',
    entry: '{ provider: anthropic, model: claude-sonnet-4-5, apiKeyEnv: ANTHROPIC_API_KEY }',
    price: ['claude-sonnet-4-5', 3, 15],
    note: 'Anthropic; the key is read from $ANTHROPIC_API_KEY',
  },
  ollama: {
    key: 'local',
    entry: "{ provider: openai-compatible, model: 'qwen2.5-coder:7b', baseURL: http://127.0.0.1:11434/v1 }",
    price: ['qwen2.5-coder:7b', 0, 0],
    note: 'Ollama on this machine (ollama pull qwen2.5-coder:7b); no key',
  },
  'llama.cpp': {
    key: 'local',
    entry: '{ provider: openai-compatible, model: local, baseURL: http://127.0.0.1:8080/v1 }',
    price: ['local', 0, 0],
    note: 'llama.cpp server on this machine (llama-server --jinja -m MODEL.gguf); no key',
  },
  vllm: {
    key: 'local',
    entry:
      '{ provider: openai-compatible, model: Qwen/Qwen2.5-Coder-7B-Instruct, baseURL: http://127.0.0.1:8000/v1 }',
    price: ['Qwen/Qwen2.5-Coder-7B-Instruct', 0, 0],
    note: 'vLLM on this machine (vllm serve MODEL --enable-auto-tool-choice --tool-call-parser hermes); no key',
  },
} as const satisfies Record<string, ModelPreset>;
export type ModelPresetName = keyof typeof modelPresets;

const priceLine = ([model, input, output]: readonly [string, number, number]) =>
  `  ${/^[\w./-]+$/.test(model) ? model : `'${model}'`}: { inputPerMTok: ${input}, outputPerMTok: ${output} }`;

/** The models and prices sections: the chosen model in force, one of each other kind as a comment. */
function modelSections(chosen: ModelPresetName): { models: string; prices: string; key: string } {
  const preset: ModelPreset = modelPresets[chosen];
  const seen = new Set([preset.key]);
  const alternatives: ModelPreset[] = [];
  for (const other of Object.values(modelPresets) as ModelPreset[])
    if (!seen.has(other.key)) {
      seen.add(other.key);
      alternatives.push(other);
    }
  const models = [`  ${preset.key}: ${preset.entry}`, ...alternatives.map((p) => `  # ${p.key}: ${p.entry}`)];
  const priced = [preset, ...alternatives].flatMap((p) => (p.price === undefined ? [] : [p.price]));
  return { models: models.join('\n'), prices: priced.map(priceLine).join('\n'), key: preset.key };
}

/** The commented starter config `keel init` writes; it runs as it is (the model chosen, built-in servers). */
export function starterConfig(options: {
  workspace: string;
  /** The model every agent uses (default: the playbook, which needs no network). */
  model?: ModelPresetName;
  deployConfig?: string;
  /** Written as `stateDir` (relative to the config); default: none, so the per-project one under the user's state dir. */
  stateDir?: string;
  /** The demo's keys: the supervisor signs with the private one, the deploy server trusts the public one. */
  approvalKeys?: { signingKey: string; publicKey: string };
}): string {
  const deployArgs = `--root, ., --config, ${options.deployConfig ?? 'keel.deploy.yaml'}${options.approvalKeys === undefined ? '' : `, --approval-key, ${options.approvalKeys.publicKey}`}`;
  const chosen = modelSections(options.model ?? 'playbook');
  const model = chosen.key;
  return `# Keel supervisor config. Paths are relative to this file.
version: 1

# The project the servers are rooted at.
workspace: ${options.workspace}

# Where Keel keeps its task store (SQLite), the servers' state and their keys. ${
    options.stateDir === undefined
      ? `By default a directory
# of this project under $XDG_STATE_HOME/keel/projects (~/.local/state/keel/projects): outside the
# workspace, so no tool sees it. Wherever you put it, every server Keel starts denies it to its tools.
# stateDir: ../.keel-state`
      : `Outside the workspace, so
# no tool sees it; every server Keel starts denies it to its tools anyway.
stateDir: ${options.stateDir}`
  }

# MCP servers, by name. \`builtin\` starts a Keel server shipped with keel over stdio, in the
# workspace; \`command\` starts any stdio server; \`url\` connects over Streamable HTTP.
servers:
  filesystem: { builtin: filesystem, args: [--root, .] }
  git: { builtin: git, args: [--root, .] }
  tests: { builtin: test-runner, args: [--root, .] }
${options.deployConfig === undefined ? `  # deploy: { builtin: deploy, args: [${deployArgs}] }` : `  deploy: { builtin: deploy, args: [${deployArgs}] }`}
  # remote: { url: http://127.0.0.1:7300/mcp, tokenEnv: KEEL_REMOTE_TOKEN }

# Models, by name: ${modelPresets[options.model ?? 'playbook'].note}. Each agent below
# names the one it uses (\`keel init --model openai|anthropic|ollama|llama.cpp|vllm|playbook\`).
models:
${chosen.models}

# USD per million tokens, per model name; the money limit reserves with these before each call
# (every model but the playbook needs one; 0 for a model that costs nothing).
prices:
${chosen.prices}

# Each specialist sees only the tools listed for it ("*": all of that server's tools).
agents:
  planning:
    model: ${model}
    tools:
      filesystem: [read_file, read_files, list_directory, tree, find_files, search_text, stat]
      git: [git_status, git_log, git_diff, git_show]
  coding:
    model: ${model}
    maxTokens: 8192
    tools:
      filesystem: [read_file, read_files, list_directory, tree, find_files, search_text, stat, write_file, edit_file, apply_patch, create_directory]
      git: [git_status, git_diff, git_log, git_show, git_add, git_commit]
      tests: [run_tests, get_run, list_tests]
  review:
    model: ${model}
    tools:
      filesystem: [read_file, read_files, search_text]
      git: [git_status, git_diff, git_log, git_show]
      tests: [get_run]
${options.deployConfig === undefined ? `  # deploy:\n  #   model: ${model}\n  #   tools: { deploy: [list_environments, plan_deploy, apply_deploy, deploy_status, list_releases, health_check] }` : `  deploy:\n    model: ${model}\n    tools:\n      deploy: [list_environments, plan_deploy, apply_deploy, deploy_status, list_releases, health_check]`}

# Hard limits per task, checked before every model call and tool call (a task file may lower them).
limits:
  steps: 60
  tokens: 2000000
  wallClockMs: 900000
  toolCalls: 200
  costUsd: 5
  reviewRounds: 3
  testRounds: 3
  contractRetries: 2

# Side-effect caps: a mutating call's effect is computed before it runs.
sideEffects:
  maxFilesChanged: 20
  maxLinesChanged: 1000
  protectedPaths: [".github/**", "**/*.pem", "**/.env*"]

# Loop detection: the same call repeated, A-B-A-B ping-pong, steps without progress.
loops: { repeat: 3, pingPong: 3, noProgressSteps: 10, onLoop: escalate }

# Irreversible calls (a push, a deploy to an environment that requires approval, destructive tools
# outside the task's own worktree) wait for a human: keel approvals, keel approve ID, keel deny ID.
approvals:
  expiresHours: 24
  # Tools a task may use without asking while it has read nothing untrusted (files, diffs, test output).
  preApproved: []
${
  options.approvalKeys === undefined
    ? `  # The Ed25519 key that signs deploy approvals (keel keygen writes one; the deploy server gets the .pub).
  # signingKey: keys/approval.key`
    : `  # Signs deploy approvals once a human approves; the deploy server trusts only the public key.
  signingKey: ${options.approvalKeys.signingKey}`
}

# Model-call bodies and tool payloads older than this are purged (the event log never is).
retentionDays: 30
`;
}

/** A small task file to try the config with (read-only: it plans and reviews nothing). */
export const exampleTask = `# keel run task.example.yaml
type: explore
title: Describe the repository
description: Read the repository and write a one-step plan describing it. Change nothing.
mode: orchestrated
tests: null
deploy: null
playbook:
  planning:
    - - call: tree
        args: { path: ".", maxDepth: 2 }
      - submit:
          version: plan.v1
          summary: "Describe the repository; change nothing."
          steps: [{ id: s1, description: "Nothing to change", files: [] }]
          acceptance: ["no file changes"]
  coding:
    - - call: git_status
        args: {}
      - submit:
          version: change.v1
          summary: "No change was needed."
          files: []
          commit: null
  review:
    - - submit:
          version: review.v1
          verdict: approve
          summary: "Nothing changed, nothing to object to."
          comments: []
`;
