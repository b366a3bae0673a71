import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { expect, it } from 'vitest';
import { loadAttacks } from '../src/load.js';
import { renderReadme } from '../src/readme.js';

const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));

it('the committed README table is the one the attacks generate', async () => {
  const text = await format(renderReadme(await loadAttacks()), {
    ...(await resolveConfig(readmePath)),
    filepath: readmePath,
  });
  if (process.env['KEEL_WRITE_ADVERSARIAL_README'] === '1') writeFileSync(readmePath, text);
  expect(readFileSync(readmePath, 'utf8'), 'stale: run `pnpm --filter @keel/adversarial readme`').toBe(text);
});
