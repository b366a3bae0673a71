import { get, post } from './api.js';
import { h, json, status, time } from './dom.js';
import { failed, report, who } from './shell.js';
import type { Approval } from './types.js';

function field(id: string, label: string, placeholder: string): HTMLElement {
  return h(
    'label',
    { class: 'field' },
    label,
    h('input', { 'data-keep': id, 'data-testid': id.split(':')[0], placeholder }),
  );
}

const value = (id: string) =>
  document.querySelector<HTMLInputElement>(`[data-keep="${CSS.escape(id)}"]`)?.value.trim() ?? '';

/** Sends a decision; `taskId` when the task goes on in this console (its notice gives way to its end). */
async function act(
  path: string,
  body: Record<string, unknown>,
  done: string,
  taskId?: string,
): Promise<void> {
  try {
    await post(path, body);
    report(done, false, taskId);
  } catch (error) {
    failed(error);
  }
}

/**
 * `steps=80 toolCalls=300` (spaces or commas between) as `{ steps: 80, toolCalls: 300 }`; the server
 * checks the names and values and answers a mistake with the list of limits.
 */
export function parseRaise(text: string): Record<string, number> {
  const raise: Record<string, number> = {};
  for (const part of text.split(/[\s,]+/).filter((p) => p !== '')) {
    const match = /^([A-Za-z]+)=(-?\d+(?:\.\d+)?)$/.exec(part);
    if (match === null)
      throw new Error(`'${part}': raise limits as NAME=NUMBER, e.g. steps=80 toolCalls=300`);
    raise[match[1]!] = Number(match[2]);
  }
  return raise;
}

function card(a: Approval): HTMLElement {
  const pending = a.status === 'pending';
  const id = encodeURIComponent(a.id);
  const approve = () =>
    void act(
      `/api/approvals/${id}/approve`,
      { by: who(true), reason: value(`reason:${a.id}`) || undefined },
      `approved ${a.id}; task ${a.taskId} resumes in the console`,
      a.taskId,
    );
  const deny = () =>
    void act(
      `/api/approvals/${id}/deny`,
      { by: who(true), reason: value(`reason:${a.id}`) },
      `denied ${a.id}; task ${a.taskId} ended`,
    );
  const raise = () => parseRaise(value(`raise:${a.id}`));
  const cont = () =>
    void act(
      `/api/escalations/${id}/continue`,
      { by: who(true), raise: raise(), hint: value(`reason:${a.id}`) || undefined },
      `continuing ${a.taskId}`,
      a.taskId,
    );
  const abort = () =>
    void act(
      `/api/escalations/${id}/abort`,
      { by: who(true), reason: value(`reason:${a.id}`) },
      `aborted ${a.taskId}`,
    );
  const guarded = (fn: () => void) => () => {
    try {
      fn();
    } catch (error) {
      failed(error);
    }
  };
  return h(
    'article',
    { class: 'card', 'data-testid': 'approval', 'data-approval': a.id },
    h('h2', {}, a.kind === 'tool' ? `Approve ${a.tool ?? 'a call'}?` : 'Escalation', ' ', status(a.status)),
    h('p', { class: 'summary' }, a.summary),
    h(
      'p',
      { class: 'sub' },
      `${a.id} · task `,
      h('a', { href: `#/runs/${a.taskId}` }, a.taskTitle || a.taskId),
      ` · ${a.agent} agent, step ${a.step} · asked ${time(a.requestedAt)} · expires ${time(a.expiresAt)}`,
    ),
    h('h3', {}, 'Why a human must decide'),
    h('ul', { class: 'reasons' }, ...a.reasons.map((r) => h('li', {}, r))),
    a.kind === 'tool'
      ? [
          h('h3', {}, `What would run: ${a.server ?? ''}${a.server ? '.' : ''}${a.tool ?? ''}`),
          json(a.arguments),
          masked(a.arguments).length === 0
            ? null
            : h(
                'p',
                { class: 'sub', 'data-testid': 'masked' },
                `Masked here (secrets): ${masked(a.arguments).join(', ')} — the approval binds their real values, which are not shown.`,
              ),
          h('p', { class: 'sub' }, `bound to the sha256 of these arguments: ${a.argsSha256 ?? '—'}`),
          a.plan ? [h('h3', {}, 'The deploy plan'), json(a.plan)] : null,
        ]
      : [h('h3', {}, 'Where it stopped'), json(a.arguments)],
    a.decidedBy === null
      ? null
      : h(
          'p',
          { class: 'decided' },
          `${a.status} by ${a.decidedBy} at ${time(a.decidedAt)}${a.decisionReason ? `: ${a.decisionReason}` : ''}`,
        ),
    pending
      ? h(
          'div',
          { class: 'decide' },
          field(
            `reason:${a.id}`,
            a.kind === 'tool' ? 'Reason' : 'Reason or hint',
            'recorded in the audit log',
          ),
          a.kind === 'escalation'
            ? field(`raise:${a.id}`, 'Raise limits to', 'e.g. steps=80 toolCalls=300')
            : null,
          a.kind === 'tool'
            ? [
                h(
                  'button',
                  { class: 'primary', 'data-testid': 'approve', onclick: guarded(approve) },
                  'Approve',
                ),
                h('button', { class: 'danger', 'data-testid': 'deny', onclick: guarded(deny) }, 'Deny'),
              ]
            : [
                h(
                  'button',
                  { class: 'primary', 'data-testid': 'continue', onclick: guarded(cont) },
                  'Continue',
                ),
                h('button', { class: 'danger', 'data-testid': 'abort', onclick: guarded(abort) }, 'Abort'),
              ],
        )
      : null,
  );
}

/** What waits for a human (or, with ?all=1, everything decided too). */
export async function approvalsPage(query: URLSearchParams): Promise<HTMLElement> {
  const all = query.has('all');
  const approvals = await get<Approval[]>(`/api/approvals${all ? '?all=1' : ''}`);
  return h(
    'section',
    { 'data-testid': 'approvals' },
    h('h1', {}, all ? 'Approvals and escalations' : 'Waiting for a human'),
    h(
      'p',
      {},
      h(
        'a',
        { href: all ? '#/approvals' : '#/approvals?all=1' },
        all ? 'only what waits' : 'show decided ones too',
      ),
    ),
    approvals.length === 0 ? h('p', { class: 'empty' }, 'Nothing waits for a human.') : approvals.map(card),
  );
}

/** Where a secret was masked in the shown arguments (the same rule as `keel approvals show`). */
function masked(value: unknown, at = '$', depth = 0): string[] {
  if (value === '[REDACTED]') return [at];
  if (depth > 32 || value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => masked(v, `${at}[${i}]`, depth + 1));
  return Object.entries(value).flatMap(([k, v]) =>
    masked(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`, depth + 1),
  );
}
