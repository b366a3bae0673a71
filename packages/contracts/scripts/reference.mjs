#!/usr/bin/env node
// The contracts reference (docs/contracts.md), generated from the zod schemas this package
// exports: every field, its type, whether it is required, its limits and its description come from
// the schema, so the page cannot drift from what the harness validates. `pnpm docs:contracts`
// rewrites it; packages/contracts/test/reference.test.ts fails while the committed page is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { z } from 'zod';
import { checkContract, contracts } from '../dist/index.js';

/** Where the page lives, from the repository root. */
export const referencePath = 'docs/contracts.md';

/** What the schema cannot say: who hands each contract to whom. An example of each follows, validated. */
const about = {
  'plan.v1': {
    from: 'the planning agent, as the input of its final tool `submit_plan`',
    to: 'the orchestrator, which gives it to the coding and review agents',
    example: {
      version: 'plan.v1',
      summary: 'Make greet() put a comma after Hello and an exclamation mark after the name.',
      steps: [{ id: 's1', description: 'Return `Hello, ${name}!`', files: ['greet.js'] }],
      acceptance: ['test/greet.test.js passes'],
    },
  },
  'change.v1': {
    from: 'the coding agent, as the input of `submit_change`, after it committed the change',
    to: 'the review agent; `addressed` answers the previous review in a rework round',
    example: {
      version: 'change.v1',
      summary: 'greet() returns `Hello, ${name}!`',
      files: [{ path: 'greet.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
      commit: {
        sha: '3f786850e387550fdab836ed7e6dc881de23001b',
        message: 'greet: comma and exclamation mark',
      },
    },
  },
  'review.v1': {
    from: 'the review agent, as the input of `submit_review`',
    to: 'the orchestrator: `approve` moves on to the tests, `request_changes` sends the task back to coding (at most `limits.reviewRounds` rounds)',
    example: {
      version: 'review.v1',
      verdict: 'request_changes',
      summary: 'The comma is there, the exclamation mark is not.',
      comments: [{ path: 'greet.js', line: 2, severity: 'blocker', body: "Append '!' after the name." }],
    },
  },
  'test.v1': {
    from: "the orchestrator, from the test-runner server's `run_tests` result (no agent writes it)",
    to: 'the coding agent in the next rework round when the tests failed (at most `limits.testRounds` runs)',
    example: {
      version: 'test.v1',
      runId: 'run-7f3a9c',
      project: '.',
      outcome: 'failed',
      totals: { passed: 0, failed: 1, skipped: 0, total: 1 },
      durationMs: 412,
      failures: [
        {
          name: 'greets by name, with a comma and an exclamation mark',
          file: 'test/greet.test.js',
          message: "Expected values to be strictly equal: 'Hello, Ada' !== 'Hello, Ada!'",
        },
      ],
    },
  },
  'deploy.v1': {
    from: 'the deploy agent, as the input of `submit_deploy`, once per environment the task deploys to',
    to: 'the orchestrator, which goes on to the next environment only after `live`',
    example: {
      version: 'deploy.v1',
      environment: 'staging',
      status: 'live',
      releaseId: 'staging-922a36696cab',
      planId: 'plan-922a36696cab07166248',
      planHash: '922a36696cab07166248c1d1b1b0f2b7d3c9a0e4f5a6b7c8d9e0f1a2b3c4d5e6',
    },
  },
  'taskRun.v1': {
    from: 'the harness: the run record of a task (`keel run --json`, `keel show --json`)',
    to: 'you, the web console, `keel stats` and `keel eval`',
    example: {
      version: 'taskRun.v1',
      id: 't-20261206-171650-1a9c2a',
      type: 'bugfix',
      mode: 'orchestrated',
      startedAt: '2026-12-06T17:16:50.695Z',
      endedAt: '2026-12-06T17:17:40.118Z',
      status: 'succeeded',
      outcome: { message: '1 coding round(s), tests passed (1/1), no deploy' },
      steps: 9,
      tokens: { input: 48210, output: 1630 },
      costUsd: 0.0219,
      approvalsAsked: 0,
      toolCalls: [
        { server: 'filesystem', tool: 'read_file', latencyMs: 12.4, ok: true, irreversible: false },
      ],
    },
  },
};

const code = (value) => `\`${value}\``;
const escape = (text) => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');
/** Integer bounds zod writes for "any safe integer": not worth a reader's attention. */
const safe = 9007199254740991;

function typeOf(node) {
  if (node.anyOf !== undefined) {
    const kinds = node.anyOf.filter((n) => n.type !== 'null').map(typeOf);
    return `${kinds.join(' or ')}${node.anyOf.some((n) => n.type === 'null') ? ' or null' : ''}`;
  }
  if (node.const !== undefined) return code(JSON.stringify(node.const));
  if (node.enum !== undefined) return node.enum.map((v) => code(JSON.stringify(v))).join(' | ');
  if (node.type === 'array') return `array of ${typeOf(node.items ?? {})}`;
  if (node.type === 'string' && node.format === 'date-time') return 'string (ISO 8601 date-time)';
  return node.type ?? 'any';
}

function limitsOf(node) {
  const target = node.anyOf?.find((n) => n.type !== 'null') ?? node;
  const out = [];
  if (target.minLength !== undefined || target.maxLength !== undefined)
    out.push(`${target.minLength ?? 0}–${target.maxLength ?? '∞'} characters`);
  if (target.pattern !== undefined && target.format === undefined)
    out.push(`matches ${code(target.pattern)}`);
  if (target.minItems !== undefined || target.maxItems !== undefined)
    out.push(`${target.minItems ?? 0}–${target.maxItems ?? '∞'} items`);
  if (target.exclusiveMinimum !== undefined) out.push(`> ${target.exclusiveMinimum}`);
  if (target.minimum !== undefined) out.push(`≥ ${target.minimum}`);
  if (target.maximum !== undefined && target.maximum !== safe) out.push(`≤ ${target.maximum}`);
  return out.join(', ');
}

/** One row per field, depth first; `[]` marks the elements of an array. */
function fieldRows(node, prefix, rows) {
  const object = node.anyOf?.find((n) => n.type === 'object') ?? node;
  if (object.type !== 'object' || object.properties === undefined) return rows;
  const required = new Set(object.required ?? []);
  for (const [name, child] of Object.entries(object.properties)) {
    const field = `${prefix}${name}`;
    const described = child.description ?? child.anyOf?.find((n) => n.description)?.description ?? '';
    rows.push(
      `| ${code(field)} | ${escape(typeOf(child))} | ${required.has(name) ? 'yes' : 'no'} | ${escape(limitsOf(child))} | ${escape(described)} |`,
    );
    const inner = child.anyOf?.find((n) => n.type !== 'null') ?? child;
    if (inner.type === 'array') fieldRows(inner.items ?? {}, `${field}[].`, rows);
    else fieldRows(inner, `${field}.`, rows);
  }
  return rows;
}

const target = new URL(`../../../${referencePath}`, import.meta.url);

/**
 * The whole page, as committed: formatted as `pnpm format` would, so formatting never makes it
 * stale. `registry` is the package's contracts unless a test passes changed ones.
 */
export async function renderContractsReference(registry = contracts) {
  const sections = Object.entries(registry).map(([name, schema]) => {
    const info = about[name];
    if (info === undefined)
      throw new Error(`${name}: no entry in scripts/reference.mjs (who hands it to whom)`);
    const checked = checkContract(name, info.example);
    if (!checked.ok)
      throw new Error(`the ${name} example in scripts/reference.mjs is invalid: ${checked.message}`);
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
    return [
      `## ${name}`,
      '',
      `From ${info.from}; to ${info.to}.`,
      '',
      '| field | type | required | limits | description |',
      '| --- | --- | --- | --- | --- |',
      ...fieldRows(json, '', []),
      '',
      'An example that validates:',
      '',
      '```json',
      JSON.stringify(info.example, null, 2),
      '```',
    ].join('\n');
  });
  const page = [
    '# Contracts reference',
    '',
    '<!-- Generated by packages/contracts/scripts/reference.mjs from the zod schemas of @keel/contracts: do not edit; run `pnpm docs:contracts`. -->',
    '',
    "What Keel's agents hand each other, as the harness validates it at every hop. An agent hands in",
    'its contract by calling its final tool, whose input schema is the contract: an invalid one goes',
    'back to the model with its issues (at most `limits.contractRetries` times), and a value naming',
    'another version (`plan.v2` where `plan.v1` is expected) is refused naming both. Fields marked',
    '"no" may be left out; a field under one of those is required only when its parent is there;',
    '`[]` marks the elements of a list.',
    '',
    ...Object.keys(registry).map((name) => `- [${name}](#${name.replace('.', '').toLowerCase()})`),
    '',
    sections.join('\n\n'),
    '',
  ].join('\n');
  const file = fileURLToPath(target);
  return prettier.format(page, { ...(await prettier.resolveConfig(file)), filepath: file });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(target, await renderContractsReference());
  process.stdout.write(`wrote ${referencePath}\n`);
}
