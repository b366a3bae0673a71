import { sha256Hex } from '../canonical.js';

/** Words that make an argument name secret (`apiKey`, `github_token`, `clientSecret`...). */
const secretWords = new Set([
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'cookie',
  'apikey',
]);
const secretPairs = new Set(['api key', 'private key', 'access key']);

function isSecretWordName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  return words.some((word, i) => secretWords.has(word) || secretPairs.has(`${word} ${words[i + 1] ?? ''}`));
}

/** Values that look like credentials whatever their argument is called. */
const secretValue = [
  /\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b/,
  /\bsk-[A-Za-z0-9_-]{16,}\b/,
  /\bxox[abpr]-[A-Za-z0-9-]{10,}\b/,
  /\bAKIA[0-9A-Z]{16}\b/,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*/i,
  /\/\/[^/\s:@]+:[^/\s@]+@/,
];

export interface RedactOptions {
  /** Strings longer than this are replaced by their size and hash (file contents, patches). */
  maxStringLength?: number;
  extraSecretNames?: RegExp[];
}

/**
 * Returns a copy of `value` fit for the audit log: secrets by name or by shape become
 * `[REDACTED]`, long strings become `{ bytes, sha256 }` so the log proves what was written without
 * holding it.
 */
export function redact(value: unknown, options: RedactOptions = {}): unknown {
  const maxLength = options.maxStringLength ?? 512;
  const isSecretName = (name: string) =>
    isSecretWordName(name) || (options.extraSecretNames ?? []).some((pattern) => pattern.test(name));

  const walk = (node: unknown, depth: number): unknown => {
    if (depth > 32) return '[TOO_DEEP]';
    if (typeof node === 'string') {
      if (secretValue.some((pattern) => pattern.test(node))) return '[REDACTED]';
      if (node.length > maxLength)
        return { redacted: 'long-string', bytes: Buffer.byteLength(node), sha256: sha256Hex(node) };
      return node;
    }
    if (Array.isArray(node)) return node.map((item) => walk(item, depth + 1));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [name, member] of Object.entries(node)) {
        // The idempotency key names the call; it is an identifier, not a credential.
        // Defined, not assigned, so an own "__proto__" member is kept as the data it is.
        Object.defineProperty(out, name, {
          value: isSecretName(name) && name !== 'idempotencyKey' ? '[REDACTED]' : walk(member, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return node;
  };
  return walk(value, 0);
}
