import { InvalidArgumentError } from 'commander';

/** A repeatable string flag's parser: `--root a --root b` gives `['a', 'b']`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A repeatable flag restricted to `choices`; anything else is a usage error that lists them. */
export function collectChoice<TChoice extends string>(
  flag: string,
  choices: readonly TChoice[],
  why = '',
): (value: string, previous: TChoice[] | undefined) => TChoice[] {
  return (value, previous) => {
    if (!(choices as readonly string[]).includes(value))
      throw new InvalidArgumentError(`${flag} '${value}' is not one of ${choices.join(', ')}${why}.`);
    return [...(previous ?? []), value as TChoice];
  };
}

/** A non-negative integer flag's parser. */
export function nonNegativeInt(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 0)
      throw new InvalidArgumentError(`${flag} must be a non-negative integer`);
    return parsed;
  };
}
