import { defineAttack } from '../src/attack.js';
import { countedAsReported, expectStoppedByTokens } from '../src/budgets.js';

export default defineAttack({
  id: 'usage-omitted',
  item: '19.7',
  onMain: 'failed',
  title:
    'an OpenAI-compatible server (as local ones do) answers without `usage`; each reply counted as 0 tokens, so a task with a 100k-token limit sent 80 requests (~300k tokens by the server’s own count) and only the step limit stopped it',
  proves:
    'a reply without usage is settled at its reservation: the token limit stops the task before the provider’s own count crosses it',
  attack: () => expectStoppedByTokens(null),
  twin: {
    title: 'the same task against a provider that reports usage runs to its end, counted as reported',
    run: countedAsReported,
  },
});
