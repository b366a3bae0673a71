import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { contracts } from '../src/index.js';
import { referencePath, renderContractsReference } from '../scripts/reference.mjs';

const committed = () => readFileSync(new URL(`../../../${referencePath}`, import.meta.url), 'utf8');

describe('the contracts reference', () => {
  it('docs/contracts.md is exactly what the schemas generate (when this fails: pnpm docs:contracts)', async () => {
    expect(committed()).toBe(await renderContractsReference());
  });

  it('a field added to a schema shows up as a row, so the committed page is then stale', async () => {
    const changed = await renderContractsReference({
      ...contracts,
      'plan.v1': contracts['plan.v1'].extend({
        owner: z.string().max(80).optional().describe('who answers for the plan'),
      }),
    });
    expect(changed).not.toBe(committed());
    expect(changed.split('\n').filter((line) => line.startsWith('| `owner`'))).toEqual([
      '| `owner`               | string          | no       | 0–80 characters   | who answers for the plan                                               |',
    ]);
  });
});
