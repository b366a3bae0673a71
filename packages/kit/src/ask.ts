import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { inputRequired, inputResponse, type InputRequiredResult } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { sha256Hex } from './canonical.js';
import { toolError, type Outcome, type ToolError } from './errors.js';

/** How long a question stays answerable unless the tool says otherwise. */
export const defaultQuestionTtlMs = 10 * 60_000;

/**
 * A question for the person at the client (form-mode elicitation). The schema is a flat zod object of
 * strings, numbers, booleans and enums: what an elicitation form can show.
 */
export interface Question<TSchema extends z.ZodObject<z.ZodRawShape>> {
  /** Names the answer among this call's questions. */
  id: string;
  /** What the person reads: say what happens on accept. */
  message: string;
  schema: TSchema;
  /**
   * What the answer approves (a plan hash). The sealed request state is bound to it: an answer given
   * for anything else is refused.
   */
  about: string;
  /** How long the question stays answerable (default ten minutes). */
  ttlMs?: number;
}

/** Why an answer was refused: its request state was altered, belongs to another question or call, or expired. */
export type AskRefusal = 'tampered' | 'foreign' | 'expired';

/** What `ctx.ask` found. */
export type Asked<TContent> =
  /** The person answered; `stateId` is unique per question asked, for single-use bookkeeping. */
  | { status: 'answered'; action: 'accept'; content: TContent; stateId: string }
  | { status: 'answered'; action: 'decline' | 'cancel'; stateId: string }
  /** The question goes to the client: return `outcome` from the handler; the call comes back with the answer. */
  | { status: 'pending'; outcome: Outcome<never> }
  /** The client cannot show a form (no elicitation capability, or an in-process call): use another way. */
  | { status: 'unsupported' }
  /** An answer came back that cannot be trusted; `error` says why, tools may word their own. */
  | { status: 'refused'; reason: AskRefusal; error: ToolError };

/** What a call knows about asking: whether the client can, and what it sent back. */
export interface AskContext {
  canElicit: boolean;
  inputResponses: Record<string, unknown> | undefined;
  requestState: string | undefined;
}

const inputRequiredKey: unique symbol = Symbol('keel.inputRequired');
type PendingOutcome = Outcome<never> & { [inputRequiredKey]?: InputRequiredResult };

/** The input_required result a handler's pending question carries, if it returned one. */
export function pendingInput(outcome: Outcome<unknown>): InputRequiredResult | undefined {
  return (outcome as PendingOutcome)[inputRequiredKey];
}

/** What the sealed request state says: the question, the call it belongs to, and its expiry. */
interface Sealed {
  v: 1;
  /** A random id: each asking of a question is a different state. */
  n: string;
  /** server, tool and the call's argument fingerprint: the state belongs to this call only. */
  c: string;
  q: string;
  /** sha256 of what the answer approves. */
  a: string;
  exp: number;
}

/**
 * Seals request state with HMAC-SHA256 under a key derived from the state directory's secret, so a
 * client (or a replica) holds an opaque token it cannot alter, and any replica sharing the state
 * directory can verify it.
 */
export interface RequestStateSealer {
  seal(state: Sealed): string;
  open(token: string): Sealed | undefined;
}

export function createRequestStateSealer(secret: Uint8Array): RequestStateSealer {
  // Domain-separated from the cursor key it is derived from.
  const key = createHmac('sha256', secret).update('keel/request-state/v1').digest();
  const mac = (body: string) => createHmac('sha256', key).update(body).digest();
  return {
    seal(state) {
      const body = Buffer.from(JSON.stringify(state)).toString('base64url');
      return `ks1.${body}.${mac(body).toString('base64url')}`;
    },
    open(token) {
      const parts = token.split('.');
      if (parts.length !== 3 || parts[0] !== 'ks1') return undefined;
      const [, body, tag] = parts as [string, string, string];
      const given = Buffer.from(tag, 'base64url');
      const expected = mac(body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      try {
        const state = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Sealed;
        return state.v === 1 ? state : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * One question through the round trip. First pass: seal a state bound to this call and the thing
 * approved, and return input_required. Second pass (the client's retry on 2026-07-28, the SDK's
 * shim on 2025-era connections): open the state, check it is this call's and unexpired, read the
 * answer. An answer without its sealed state is never taken.
 */
export function ask<TSchema extends z.ZodObject<z.ZodRawShape>>(
  question: Question<TSchema>,
  call: { context: AskContext | undefined; sealer: RequestStateSealer; callId: string; now: number },
): Asked<z.output<TSchema>> {
  const context = call.context;
  const refuse = (reason: AskRefusal, message: string, hint: string) =>
    ({
      status: 'refused',
      reason,
      error: toolError('INVALID_ARGUMENT', message, { hint, details: { reason } }),
    }) as const;
  if (context?.requestState !== undefined) {
    const state = call.sealer.open(context.requestState);
    if (state === undefined)
      return refuse(
        'tampered',
        'the request state was altered',
        'Retry the call without requestState to be asked again.',
      );
    if (state.c !== call.callId || state.q !== question.id || state.a !== sha256Hex(question.about))
      return refuse(
        'foreign',
        'the request state belongs to another question',
        'Echo back the requestState of this call exactly, or retry without it to be asked again.',
      );
    if (call.now > state.exp)
      return refuse(
        'expired',
        'the question expired before it was answered',
        'Retry the call to be asked again.',
      );
    const answer = inputResponse(context.inputResponses, question.id);
    if (answer.kind === 'elicit') {
      if (answer.action !== 'accept') return { status: 'answered', action: answer.action, stateId: state.n };
      const content = question.schema.safeParse(answer.content ?? {});
      if (!content.success)
        return {
          status: 'refused',
          reason: 'tampered',
          error: toolError(
            'INVALID_ARGUMENT',
            `the answer does not fit the question: ${z.prettifyError(content.error)}`,
            {
              hint: 'Retry the call without requestState to be asked again.',
            },
          ),
        };
      return { status: 'answered', action: 'accept', content: content.data, stateId: state.n };
    }
  } else if (context?.inputResponses?.[question.id] !== undefined) {
    return refuse(
      'foreign',
      'an answer came without the sealed request state of its question',
      'Echo back the requestState the question came with.',
    );
  }
  if (context === undefined || !context.canElicit) return { status: 'unsupported' };
  const requestState = call.sealer.seal({
    v: 1,
    n: randomBytes(12).toString('base64url'),
    c: call.callId,
    q: question.id,
    a: sha256Hex(question.about),
    exp: call.now + (question.ttlMs ?? defaultQuestionTtlMs),
  });
  const result = inputRequired({
    inputRequests: {
      [question.id]: inputRequired.elicit({
        message: question.message,
        requestedSchema: formSchema(question.schema),
      }),
    },
    requestState,
  });
  const outcome: PendingOutcome = {
    ok: false,
    error: toolError('CONFIRMATION_REQUIRED', 'waiting for the person at the client to answer', {
      retryable: true,
    }),
  };
  Object.defineProperty(outcome, inputRequiredKey, { value: result });
  return { status: 'pending', outcome };
}

type FormSchema = Parameters<typeof inputRequired.elicit>[0]['requestedSchema'];

/** The restricted JSON Schema form-mode elicitation allows: a flat object of primitive fields. */
function formSchema(schema: z.ZodObject<z.ZodRawShape>): FormSchema {
  const json = z.toJSONSchema(schema, { io: 'input' }) as {
    properties?: Record<string, unknown>;
    required?: string[];
  };
  return {
    type: 'object',
    properties: (json.properties ?? {}) as Extract<FormSchema, { properties: unknown }>['properties'],
    ...(json.required === undefined ? {} : { required: json.required }),
  } as FormSchema;
}
