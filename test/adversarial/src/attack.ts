/**
 * One attack of the suite, as a value: the test registers it, the README table is generated from it.
 * `attack` passes when the guarantee held (the attack was stopped); `twin` is the benign request
 * that looks like it and must succeed without a human, so refusing everything cannot pass.
 */
export interface Attack {
  /** Unique, kebab-case: the file name in `attacks/` without `.ts`. */
  id: string;
  /** The issue item it proves, e.g. `19.2`. */
  item: string;
  /**
   * `failed`: the attack succeeded on main before the fix (seen by running it there);
   * `guard`: main already stopped it, the test keeps it that way.
   */
  onMain: 'failed' | 'guard';
  /** What the attacker does, in one line. */
  title: string;
  /** What the passing test proves, in one line. */
  proves: string;
  attack: () => Promise<void>;
  twin: { title: string; run: () => Promise<void> };
}

export const defineAttack = (attack: Attack): Attack => attack;
