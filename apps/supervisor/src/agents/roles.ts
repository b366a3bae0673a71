import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { contracts, type ContractName } from '@keel/contracts';
import type { AgentRole } from '../config/schema.js';

/** What defines a specialist: its final tool, whose input schema is its output contract. */
export interface RoleSpec {
  role: AgentRole;
  finalTool: string;
  contract: ContractName;
  finalDescription: string;
}

export const roles: Record<AgentRole, RoleSpec> = {
  planning: {
    role: 'planning',
    finalTool: 'submit_plan',
    contract: 'plan.v1',
    finalDescription:
      'Hand in the plan (contract plan.v1). Call it once, when the plan is complete; it ends your turn.',
  },
  coding: {
    role: 'coding',
    finalTool: 'submit_change',
    contract: 'change.v1',
    finalDescription:
      'Hand in the change (contract change.v1) after committing it. Call it once, when done; it ends your turn.',
  },
  review: {
    role: 'review',
    finalTool: 'submit_review',
    contract: 'review.v1',
    finalDescription: 'Hand in the review verdict (contract review.v1). It ends your turn.',
  },
  deploy: {
    role: 'deploy',
    finalTool: 'submit_deploy',
    contract: 'deploy.v1',
    finalDescription: 'Hand in the deploy outcome (contract deploy.v1). It ends your turn.',
  },
};

const schemaCache = new Map<ContractName, Record<string, unknown>>();

/** The final tool's input schema: the contract as JSON Schema. */
export function contractJsonSchema(name: ContractName): Record<string, unknown> {
  let schema = schemaCache.get(name);
  if (schema === undefined) {
    schema = z.toJSONSchema(contracts[name], { io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    delete schema['$schema'];
    schemaCache.set(name, schema);
  }
  return schema;
}

/** The built-in system prompt of a role, shipped in the package's `prompts/`. */
export function builtinPrompt(role: AgentRole | 'single'): string {
  return readFileSync(new URL(`../../prompts/${role}.md`, import.meta.url), 'utf8');
}
