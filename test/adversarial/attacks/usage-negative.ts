import { defineAttack } from '../src/attack.js';
import { countedAsReported, expectStoppedByTokens } from '../src/budgets.js';

export default defineAttack({
  id: 'usage-negative',
  item: '19.7',
  onMain: 'failed',
  title: 'a provider reports negative token counts; they were subtracted from what the task had used',
  proves: 'a negative or non-numeric count is treated as missing: counted at the bound',
  attack: () => expectStoppedByTokens({ inputTokens: -5_000, outputTokens: -1 }),
  twin: {
    title: 'the same task against a provider that reports usage runs to its end, counted as reported',
    run: countedAsReported,
  },
});
