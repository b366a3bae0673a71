import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalJson, sha256Hex } from './canonical.js';
import { fail, ok, type Outcome } from './errors.js';

/**
 * Opaque continuation tokens. A cursor carries the position where a bounded result was cut and is
 * bound to the call that produced it (server, tool and the arguments that shape the result), then
 * signed; a cursor from another call, or one with a changed byte, decodes to INVALID_ARGUMENT.
 */
export interface CursorCodec {
  encode(binding: CursorBinding, state: unknown): string;
  decode(binding: CursorBinding, cursor: string): Outcome<unknown>;
}

export interface CursorBinding {
  server: string;
  tool: string;
  args: unknown;
}

const version = 1;

/** `secret` keys the signature; share it between replicas (the state dir keeps one) so cursors survive restarts. */
export function createCursorCodec(secret: Uint8Array = randomBytes(32)): CursorCodec {
  const sign = (payload: string) => createHmac('sha256', secret).update(payload).digest().subarray(0, 16);
  const bindingHash = (binding: CursorBinding) => sha256Hex(canonicalJson(binding)).slice(0, 32);

  return {
    encode(binding, state) {
      const payload = Buffer.from(JSON.stringify({ v: version, b: bindingHash(binding), s: state })).toString(
        'base64url',
      );
      return `${payload}.${sign(payload).toString('base64url')}`;
    },
    decode(binding, cursor) {
      const invalid = (why: string) =>
        fail('INVALID_ARGUMENT', `cursor is not valid for this call: ${why}`, {
          hint: 'Pass back the nextCursor exactly as returned, with the same arguments as the call that returned it; or drop the cursor to start from the beginning.',
        });
      const dot = cursor.indexOf('.');
      if (dot <= 0 || cursor.length > 4096) return invalid('malformed');
      const payload = cursor.slice(0, dot);
      const signature = Buffer.from(cursor.slice(dot + 1), 'base64url');
      const expected = sign(payload);
      if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
        return invalid('signature mismatch (tampered, or issued by another server)');
      }
      let parsed: { v?: unknown; b?: unknown; s?: unknown };
      try {
        parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof parsed;
      } catch {
        return invalid('malformed');
      }
      if (parsed.v !== version) return invalid('unknown cursor version');
      if (parsed.b !== bindingHash(binding)) return invalid('issued for another tool or other arguments');
      return ok(parsed.s);
    },
  };
}
