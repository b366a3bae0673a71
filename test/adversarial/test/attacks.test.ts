import { describe, it } from 'vitest';
import { loadAttacks } from '../src/load.js';

for (const attack of await loadAttacks()) {
  describe(`${attack.id} (issue ${attack.item}, ${attack.onMain === 'failed' ? 'failed on main' : 'guard'})`, () => {
    it(`attack: ${attack.title}`, attack.attack);
    it(`benign twin: ${attack.twin.title}`, attack.twin.run);
  });
}
