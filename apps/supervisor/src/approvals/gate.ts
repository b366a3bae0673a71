import { randomBytes, type KeyObject } from 'node:crypto';
import { canonicalJson, redact, sha256Hex } from '@keel/kit/core';
import type { KeelConfig } from '../config/schema.js';
import type { Clock } from '../clock.js';
import type { Classification } from '../limits/irreversible.js';
import type { ApprovalRecord, Fenced, TaskStore, TaskWriter } from '../store/taskStore.js';
import { unfenced } from '../engine/fence.js';
import type { Stop } from '../engine/stop.js';

/** What the deploy server needs to accept a human's approval: the plan it was given for. */
export interface PlanFacts {
  planId: string;
  planHash: string;
  environment: string;
}

export interface GateCall {
  agent: string;
  step: number;
  callIndex: number;
  server: string;
  tool: string;
  args: Record<string, unknown>;
  classification: Classification;
  /** For apply_deploy: the plan it applies, from the task's own plan_deploy result. */
  plan: PlanFacts | undefined;
}

export type GateResult =
  | { ok: true; meta: Record<string, unknown>; approval: ApprovalRecord | undefined }
  | { ok: false; stop: Stop; approval: ApprovalRecord | undefined };

/** Mints the deploy server's approval token; the kit's format, injected so the gate stays testable. */
export type TokenSigner = (payload: {
  tool: string;
  environment: string;
  planId: string;
  planHash: string;
  approver: string;
  issuedAt: number;
  expiresAt: number;
  nonce: string;
}) => string;

export const approvalIdOf = () => `ap-${randomBytes(5).toString('hex')}`;

/**
 * The approval gate every tool call passes after it is classified. An irreversible call runs only
 * with a human's approval bound to its tool and the sha256 of its canonical arguments, consumed
 * once; policy may pre-approve a tool only while the task has read nothing untrusted. A deploy
 * approval becomes a signed token in `_meta["keel/approval"]`, which the model never sees.
 */
export class ApprovalGate {
  readonly #store: TaskStore;
  readonly #writer: TaskWriter;
  readonly #onFenced: (fenced: Fenced) => void;
  readonly #taskId: string;
  readonly #config: KeelConfig['approvals'];
  readonly #signer: TokenSigner | undefined;
  readonly #clock: Clock;
  readonly #trusted: Set<string>;
  readonly #preApproved: Set<string>;
  tainted: { tool: string; step: number } | undefined;
  asked = 0;
  readonly #serverAsked = new Set<string>();
  #earlier: Set<string> | undefined;

  /** Calls this task asked a human about in an earlier run (read once; this run adds its own). */
  async #askedEarlier(tool: string, argsSha256: string): Promise<boolean> {
    this.#earlier ??= new Set(
      (await this.#store.listApprovals({ taskId: this.#taskId }))
        .filter((a) => a.kind === 'tool')
        .map((a) => `${a.tool}\n${a.argsSha256}`),
    );
    return this.#earlier.has(`${tool}\n${argsSha256}`);
  }

  /**
   * A server answered APPROVAL_REQUIRED (an environment the classification took for reversible, or
   * a server that elicits): the call becomes a durable approval for a human, never a question for
   * the model.
   */
  async requireApproval(call: GateCall, serverMessage: string): Promise<GateResult> {
    this.#serverAsked.add(`${call.tool}\n${sha256Hex(canonicalJson(call.args))}`);
    return this.check({
      ...call,
      classification: {
        irreversible: true,
        reason: `the server requires a human's approval: ${serverMessage}`,
      },
    });
  }

  constructor(options: {
    /** Read only: requests and consumptions go through `writer`, fenced at the owner's epoch. */
    store: TaskStore;
    writer: TaskWriter;
    /** Told of a refused write before it throws `FencedStop`. */
    onFenced: (fenced: Fenced) => void;
    taskId: string;
    config: KeelConfig['approvals'];
    signer: TokenSigner | undefined;
    clock: Clock;
  }) {
    this.#store = options.store;
    this.#writer = options.writer;
    this.#onFenced = options.onFenced;
    this.#taskId = options.taskId;
    this.#config = options.config;
    this.#signer = options.signer;
    this.#clock = options.clock;
    this.#trusted = new Set(options.config.trustedTools);
    this.#preApproved = new Set(options.config.preApproved.map((p) => p.tool));
  }

  /** How long a request for a human stays open. */
  get expiresMs(): number {
    return this.#config.expiresHours * 3_600_000;
  }

  /** A tool result reached a model: unless the tool is trusted, the task is tainted from now on. Returns true the first time. */
  observeResult(tool: string, step: number): boolean {
    if (this.tainted !== undefined || this.#trusted.has(tool)) return false;
    this.tainted = { tool, step };
    return true;
  }

  async check(call: GateCall): Promise<GateResult> {
    const argsSha256 = sha256Hex(canonicalJson(call.args));
    // A call a human was once asked about stays gated, whatever its classification (a server that
    // answered APPROVAL_REQUIRED for an environment the classification took for reversible).
    const askedBefore =
      this.#serverAsked.has(`${call.tool}\n${argsSha256}`) ||
      (await this.#askedEarlier(call.tool, argsSha256));
    if (!call.classification.irreversible && !askedBefore) return { ok: true, meta: {}, approval: undefined };
    if (this.tainted === undefined && this.#preApproved.has(call.tool) && !askedBefore)
      return { ok: true, meta: {}, approval: undefined };
    const now = new Date(this.#clock.now());
    const slot = `${call.step}:${call.callIndex}`;
    const consumed = unfenced(
      await this.#writer.consumeApproval(call.tool, argsSha256, slot, now),
      this.#onFenced,
    );
    if (consumed !== undefined) return this.#proceed(call, consumed, now);
    const earlier = (await this.#store.listApprovals({ taskId: this.#taskId })).filter(
      (a) => a.kind === 'tool' && a.tool === call.tool && a.argsSha256 === argsSha256,
    );
    const denied = earlier.findLast((a) => a.status === 'denied');
    if (denied !== undefined)
      return {
        ok: false,
        approval: denied,
        stop: {
          status: 'failed',
          message: `${call.tool} was denied by ${denied.decidedBy ?? 'a human'} (${denied.id})${denied.decisionReason ? `: ${denied.decisionReason}` : ''}`,
        },
      };
    const reasons = [
      call.classification.reason ?? 'irreversible',
      this.tainted === undefined
        ? 'policy: irreversible actions need a human'
        : `the task has read untrusted content (${this.tainted.tool} at step ${this.tainted.step}), so no policy pre-approves it`,
    ];
    this.asked++;
    const approval = unfenced(
      await this.#writer.requestApproval(
        {
          id: approvalIdOf(),
          taskId: this.#taskId,
          kind: 'tool',
          agent: call.agent,
          step: call.step,
          callIndex: call.callIndex,
          server: call.server,
          tool: call.tool,
          argsSha256,
          arguments: redact(call.args),
          reasons,
          summary:
            call.plan === undefined
              ? `${call.server}.${call.tool} ${JSON.stringify(redact(call.args)).slice(0, 500)}`
              : `${call.tool} of plan ${call.plan.planId} (hash ${call.plan.planHash.slice(0, 12)}…) to ${call.plan.environment}`,
          requestedAt: now.toISOString(),
          expiresAt: new Date(now.getTime() + this.#config.expiresHours * 3_600_000).toISOString(),
        },
        now,
      ),
      this.#onFenced,
    );
    return {
      ok: false,
      approval,
      stop: {
        status: 'waiting',
        message: `waiting for approval ${approval.id}: ${approval.summary} — ${reasons.join('; ')}`,
      },
    };
  }

  #proceed(call: GateCall, approval: ApprovalRecord, now: Date): GateResult {
    if (call.tool !== 'apply_deploy' && call.tool !== 'rollback') return { ok: true, meta: {}, approval };
    if (call.plan === undefined)
      return call.tool === 'rollback'
        ? { ok: true, meta: {}, approval }
        : {
            ok: false,
            approval,
            stop: {
              status: 'error',
              message: `approved ${approval.id}, but the task made no plan_deploy for this plan id`,
            },
          };
    if (this.#signer === undefined)
      return {
        ok: false,
        approval,
        stop: {
          status: 'error',
          message: `approved ${approval.id}, but approvals.signingKey is not configured, so no deploy token can be signed`,
        },
      };
    const token = this.#signer({
      tool: call.tool,
      environment: call.plan.environment,
      planId: call.plan.planId,
      planHash: call.plan.planHash,
      approver: approval.decidedBy ?? 'unknown',
      issuedAt: now.getTime(),
      expiresAt: now.getTime() + 15 * 60_000,
      nonce: randomBytes(16).toString('hex'),
    });
    return { ok: true, meta: { 'keel/approval': token }, approval };
  }
}

export type { KeyObject };
