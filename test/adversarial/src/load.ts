import { readdirSync } from 'node:fs';
import type { Attack } from './attack.js';

const attacksDir = new URL('../attacks/', import.meta.url);

/** Every attack of the suite: one file per attack in `attacks/`, its default export, sorted by id. */
export async function loadAttacks(): Promise<Attack[]> {
  const files = readdirSync(attacksDir)
    .filter((f) => f.endsWith('.ts'))
    .sort();
  const attacks: Attack[] = [];
  for (const file of files) {
    const module = (await import(new URL(file, attacksDir).href)) as { default: Attack };
    if (module.default.id !== file.slice(0, -3))
      throw new Error(`attacks/${file} declares id '${module.default.id}': name the file after its id`);
    attacks.push(module.default);
  }
  return attacks;
}
