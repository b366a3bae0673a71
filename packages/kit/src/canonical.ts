import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted at every depth, so equal values always serialise to equal bytes.
 * `undefined` object members are dropped, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const member = (value as Record<string, unknown>)[key];
      // Defined, not assigned: an own "__proto__" member (JSON.parse makes one) would otherwise set
      // the prototype and vanish from the bytes, so two different argument sets would hash alike.
      if (member !== undefined)
        Object.defineProperty(sorted, key, {
          value: sortKeys(member),
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    return sorted;
  }
  return value;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The fingerprint of a call: same server, tool and arguments give the same string. */
export function callFingerprint(server: string, tool: string, args: unknown): string {
  return sha256Hex(canonicalJson({ server, tool, args }));
}
