import { describe, expect, it } from 'vitest';
import { checkContract, contracts, type ContractName } from '../src/index.js';

const valid: { [TName in ContractName]: unknown } = {
  'plan.v1': {
    version: 'plan.v1',
    summary: 'Fix add()',
    steps: [{ id: 's1', description: 'return a + b', files: ['src/math.js'] }],
    acceptance: ['the add tests pass'],
  },
  'change.v1': {
    version: 'change.v1',
    summary: 'add() returns the sum',
    files: [{ path: 'src/math.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
    commit: { sha: 'a'.repeat(40), message: 'Fix add' },
  },
  'review.v1': { version: 'review.v1', verdict: 'approve', summary: 'fine', comments: [] },
  'test.v1': {
    version: 'test.v1',
    runId: 'r1',
    project: 'app',
    outcome: 'passed',
    totals: { passed: 3, failed: 0, skipped: 0, total: 3 },
    durationMs: 120,
    failures: [],
  },
  'deploy.v1': {
    version: 'deploy.v1',
    environment: 'staging',
    status: 'skipped',
    reason: 'no deploy server',
  },
  'taskRun.v1': {
    version: 'taskRun.v1',
    id: 't1',
    type: 'fix',
    mode: 'orchestrated',
    startedAt: '2026-11-30T00:00:00.000Z',
    endedAt: null,
    status: 'running',
    outcome: { message: 'running' },
    steps: 0,
    tokens: { input: 0, output: 0 },
    costUsd: 0,
    approvalsAsked: 0,
    toolCalls: [],
  },
};

describe('contracts', () => {
  it.each(Object.keys(contracts) as ContractName[])('%s accepts its example', (name) => {
    expect(checkContract(name, valid[name])).toEqual({ ok: true, value: valid[name] });
  });

  it('names both versions on a version mismatch', () => {
    const result = checkContract('plan.v1', { ...(valid['plan.v1'] as object), version: 'plan.v2' });
    expect(result).toEqual({
      ok: false,
      code: 'VERSION_MISMATCH',
      message: 'contract version mismatch: expected plan.v1, got plan.v2',
      issues: [{ path: 'version', message: 'expected "plan.v1", got "plan.v2"' }],
    });
  });

  it('names the contract a value really is when it is another contract', () => {
    const result = checkContract('review.v1', valid['change.v1']);
    expect(result.ok === false && result.message).toBe('wrong contract: expected review.v1, got change.v1');
  });

  it('lists each invalid field with its path', () => {
    const result = checkContract('change.v1', {
      version: 'change.v1',
      summary: '',
      files: [{ path: 'a', status: 'touched', linesAdded: -1, linesRemoved: 0 }],
      commit: null,
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.code).toBe('INVALID_CONTRACT');
    expect(result.issues.map((i) => i.path)).toEqual(['summary', 'files.0.status', 'files.0.linesAdded']);
  });

  it('refuses a request_changes verdict with nothing a coder must fix', () => {
    const result = checkContract('review.v1', {
      version: 'review.v1',
      verdict: 'request_changes',
      summary: 'hmm',
      comments: [{ severity: 'nit', body: 'spacing' }],
    });
    expect(result.ok === false && result.issues).toEqual([
      { path: 'comments', message: 'a request_changes verdict needs at least one blocker or major comment' },
    ]);
  });

  it('refuses unknown fields, so a model cannot smuggle data through a contract', () => {
    const result = checkContract('deploy.v1', { ...(valid['deploy.v1'] as object), approvalToken: 'x' });
    expect(result.ok === false && result.issues[0]?.path).toBe('(root)');
  });
});
