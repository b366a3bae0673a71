import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import * as z from 'zod';

/** The `_meta` key an approval token travels under; never a tool argument, so a model cannot write it. */
export const APPROVAL_META_KEY = 'keel/approval';

const prefix = 'keel-approval.v1.';

const payloadSchema = z
  .object({
    tool: z.string().min(1),
    environment: z.string().min(1),
    planId: z.string().min(1),
    planHash: z.string().regex(/^[0-9a-f]{64}$/),
    approver: z.string().min(1).max(200),
    issuedAt: z.number().int(),
    expiresAt: z.number().int(),
    nonce: z.string().regex(/^[0-9a-f]{32}$/),
  })
  .strict();

/** What an approval token says: which tool may act on which plan in which environment, who said so, until when. */
export type ApprovalPayload = z.output<typeof payloadSchema>;

/** Why a token was refused; each is its own `details.reason` of APPROVAL_REJECTED. */
export type ApprovalRejection =
  'malformed' | 'forged' | 'expired' | 'other_tool' | 'other_environment' | 'other_plan' | 'reused';

/**
 * Signs an approval. The token is `keel-approval.v1.<payload>.<signature>`, both base64url; the
 * Ed25519 signature covers the prefix and the encoded payload exactly as sent.
 */
export function signApproval(payload: ApprovalPayload, privateKey: KeyObject): string {
  const body = `${prefix}${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${body}.${sign(null, Buffer.from(body), privateKey).toString('base64url')}`;
}

/** A fresh single-use nonce. */
export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

export type VerifiedApproval =
  | { ok: true; payload: ApprovalPayload }
  | { ok: false; reason: ApprovalRejection; payload?: ApprovalPayload };

/**
 * Checks a token against the trusted public keys and what the call is about to do. Single use is
 * not checked here: the caller records the nonce in its state, where a second use is caught.
 */
export function verifyApproval(
  token: unknown,
  keys: readonly KeyObject[],
  expected: { tool: string; environment: string; planHash: string; now: number },
): VerifiedApproval {
  if (typeof token !== 'string' || !token.startsWith(prefix) || token.length > 4096) {
    return { ok: false, reason: 'malformed' };
  }
  const dot = token.lastIndexOf('.');
  const body = token.slice(0, dot);
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  let payload: ApprovalPayload;
  try {
    const decoded = JSON.parse(
      Buffer.from(body.slice(prefix.length), 'base64url').toString('utf8'),
    ) as unknown;
    const parsed = payloadSchema.safeParse(decoded);
    if (!parsed.success) return { ok: false, reason: 'malformed' };
    payload = parsed.data;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const signedBy = (key: KeyObject) => {
    try {
      return verify(null, Buffer.from(body), key, signature);
    } catch {
      return false;
    }
  };
  if (!keys.some(signedBy)) {
    return { ok: false, reason: 'forged' };
  }
  if (expected.now >= payload.expiresAt) return { ok: false, reason: 'expired', payload };
  if (payload.tool !== expected.tool) return { ok: false, reason: 'other_tool', payload };
  if (payload.environment !== expected.environment)
    return { ok: false, reason: 'other_environment', payload };
  if (payload.planHash !== expected.planHash) return { ok: false, reason: 'other_plan', payload };
  return { ok: true, payload };
}

/** A new Ed25519 key pair as PEM: the private key (PKCS#8) for whoever approves, the public (SPKI) for servers. */
export function generateApprovalKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/**
 * Reads a public key a server trusts. A private key is refused: a server that holds one could mint
 * its own approvals.
 */
export function parsePublicKey(pem: string, source: string): KeyObject {
  if (/PRIVATE KEY/.test(pem)) {
    throw new Error(
      `${source} holds a private key; give the server only the public key (keel-deploy keygen writes both)`,
    );
  }
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${source} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

export function parsePrivateKey(pem: string, source: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${source} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}
