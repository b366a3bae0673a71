import type { z } from 'zod';
import { changeV1 } from './change.js';
import { deployV1 } from './deploy.js';
import { planV1 } from './plan.js';
import { reviewV1 } from './review.js';
import { taskRunV1 } from './taskRun.js';
import { testV1 } from './test.js';

/** Every contract by its versioned name. A new version is a new entry; old ones stay readable. */
export const contracts = {
  'plan.v1': planV1,
  'change.v1': changeV1,
  'review.v1': reviewV1,
  'test.v1': testV1,
  'deploy.v1': deployV1,
  'taskRun.v1': taskRunV1,
} as const;

export type ContractName = keyof typeof contracts;
export type ContractOf<TName extends ContractName> = z.infer<(typeof contracts)[TName]>;

export interface ContractIssue {
  path: string;
  message: string;
}

export type ContractCheck<TName extends ContractName> =
  | { ok: true; value: ContractOf<TName> }
  | {
      ok: false;
      code: 'VERSION_MISMATCH' | 'INVALID_CONTRACT';
      message: string;
      issues: ContractIssue[];
    };

const family = (name: string) => name.replace(/\.v\d+$/, '');

/**
 * Validates a value against a named contract. A value that names another version of the same
 * contract (or another contract) fails with `VERSION_MISMATCH` naming both, before any field is
 * looked at; otherwise each failing field is an issue with its path.
 */
export function checkContract<TName extends ContractName>(
  expected: TName,
  value: unknown,
): ContractCheck<TName> {
  const declared =
    typeof value === 'object' && value !== null && 'version' in value
      ? (value as { version: unknown }).version
      : undefined;
  if (typeof declared === 'string' && declared !== expected) {
    const sameFamily = family(declared) === family(expected);
    return {
      ok: false,
      code: 'VERSION_MISMATCH',
      message: sameFamily
        ? `contract version mismatch: expected ${expected}, got ${declared}`
        : `wrong contract: expected ${expected}, got ${declared}`,
      issues: [{ path: 'version', message: `expected "${expected}", got "${declared}"` }],
    };
  }
  const parsed = contracts[expected].safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data as ContractOf<TName> };
  const issues = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  return {
    ok: false,
    code: 'INVALID_CONTRACT',
    message: `${expected} is invalid: ${issues
      .slice(0, 5)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ')}${issues.length > 5 ? `; and ${issues.length - 5} more` : ''}`,
    issues,
  };
}
