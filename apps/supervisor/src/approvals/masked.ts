/** The value `redact` puts where a secret was. */
const masked = '[REDACTED]';

/**
 * Where an approval's shown arguments had a secret masked, as JSON paths (`$.env.TOKEN`): the
 * approver is told what they cannot see, and that the approval binds the real value.
 */
export function maskedPaths(value: unknown, at = '$', depth = 0): string[] {
  if (value === masked) return [at];
  if (depth > 32 || value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => maskedPaths(v, `${at}[${i}]`, depth + 1));
  return Object.entries(value).flatMap(([k, v]) =>
    maskedPaths(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`, depth + 1),
  );
}
