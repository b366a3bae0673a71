import type { Attack } from './attack.js';

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function table(attacks: readonly Attack[]): string {
  if (attacks.length === 0) return 'None yet.\n';
  const rows = attacks.map(
    (a) => `| \`${a.id}\` | ${a.item} | ${cell(a.title)} | ${cell(a.proves)} | ${cell(a.twin.title)} |`,
  );
  return (
    [
      '| attack | issue | what the attacker does | what the test proves | benign twin |',
      '| --- | --- | --- | --- | --- |',
      ...rows,
    ].join('\n') + '\n'
  );
}

/** The suite's README, generated from the attacks' metadata (`pnpm --filter @keel/adversarial readme`). */
export function renderReadme(attacks: readonly Attack[]): string {
  const failed = attacks.filter((a) => a.onMain === 'failed');
  const guards = attacks.filter((a) => a.onMain === 'guard');
  return `# @keel/adversarial

The attack suite the repository keeps: each guarantee of the harness tried as an attacker would, against
real processes — \`keel run\` with a scripted model on loopback, the real servers, real git. An attack
passes when the guarantee held. Each has a benign twin that looks like it and must succeed without a
human, so a harness that asks a person for everything cannot pass. An attack needs a tool's real
answer, so a third-party server is a real stdio process (\`fixtures/externalServer.mjs\`); the one
attack whose model must send what no HTTP provider delivers (an own \`__proto__\` member) runs the
supervisor in the test's process with a model object of its own (\`src/inProcess.ts\`).

Run it with \`pnpm --filter @keel/adversarial test\` (it is part of \`pnpm test\`). Add an attack by adding
one file to \`attacks/\` (\`export default defineAttack({ ... })\`, named after its id), then regenerate this
file with \`pnpm --filter @keel/adversarial readme\`; a test fails while it is stale.

\`onMain\` says what the attack did on main before the work that stops it: \`failed\` (the attack succeeded
there; seen by running it against main's build) or \`guard\` (main already stopped it; the test keeps it so).

<!-- generated from attacks/*.ts: do not edit by hand -->

## Attacks that succeeded on main

${table(failed)}
## Regression guards

${table(guards)}`;
}
