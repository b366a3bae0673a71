/**
 * Reading package.json scripts without a shell: split a script into commands at `&&`, `||`, `;` and
 * `|`, each into words (simple quotes honoured), following `npm run X` / `pnpm X` / `yarn X` into
 * script X. Enough to find how a project calls its test runner; never used to run a script.
 */

export type Scripts = Readonly<Record<string, unknown>>;

const maxFollow = 5;

/** Each command of `scripts[name]`, following delegations to other scripts, as word lists. */
export function scriptCommands(scripts: Scripts, name = 'test'): string[][] {
  const out: string[][] = [];
  const visit = (script: string, depth: number) => {
    for (const segment of splitCommands(script)) {
      const words = splitWords(segment);
      const delegate = delegatedScript(words, scripts);
      if (delegate !== undefined && depth < maxFollow) visit(delegate, depth + 1);
      else if (words.length > 0) out.push(words);
    }
  };
  const script = scripts[name];
  if (typeof script === 'string') visit(script, 0);
  return out;
}

/** `npm run x`, `npm run-script x`, `pnpm run x`, `pnpm x`, `yarn x` → the script they run. */
function delegatedScript(words: readonly string[], scripts: Scripts): string | undefined {
  const [tool, ...rest] = words;
  if (tool === undefined || !['npm', 'pnpm', 'yarn'].includes(tool)) return undefined;
  const args = rest.filter((word) => !word.startsWith('-'));
  const target =
    args[0] === 'run' || args[0] === 'run-script' ? args[1] : tool === 'npm' ? undefined : args[0];
  if (target === undefined || target === 'test') return undefined;
  const script = scripts[target];
  return typeof script === 'string' ? script : undefined;
}

export function splitCommands(script: string): string[] {
  return script
    .split(/&&|\|\||;|\|/)
    .map((part) => part.trim())
    .filter(Boolean);
}

export function splitWords(command: string): string[] {
  const words: string[] = [];
  for (const match of command.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    words.push(match[1] ?? match[2] ?? match[3]!);
  }
  // Leading VAR=value assignments set the environment; they are not the program.
  while (words[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words.shift();
  return words;
}

/** The words after `program` in the first command that runs it (directly or through nyc, c8, npx). */
export function argumentsOf(commands: readonly string[][], program: string): string[] | undefined {
  for (const words of commands) {
    const at = words.findIndex((word) => word === program || word.endsWith(`/${program}`));
    if (at !== -1) return words.slice(at + 1);
  }
  return undefined;
}
