/** The Node 22 binary the conformance suite runs on, or undefined where it is not installed (not linux-x64). */
export function node22Path(): string | undefined;
/** Entry scripts of the two conformance suite lines. */
export function conformanceEntries(): { stable: string; next: string };
