import { ApiError, get } from './api.js';
import type { RunDetail } from './types.js';

const nameKey = 'keel-console-name';

/** The person acting, from the header's name field (kept in this browser). */
export function who(required: boolean): string {
  const input = document.querySelector<HTMLInputElement>('#who');
  const name = input?.value.trim() ?? '';
  if (name === '' && required) {
    input?.focus();
    throw new Error('enter your name at the top first: it is recorded with every decision');
  }
  return name;
}

export function setupWho(): void {
  const input = document.querySelector<HTMLInputElement>('#who');
  if (input === null) return;
  input.value = localStorage.getItem(nameKey) ?? '';
  input.addEventListener('change', () => localStorage.setItem(nameKey, input.value.trim()));
}

/** The notice for a failed action: what went wrong and, when the console says, the way out. */
export function failed(error: unknown): void {
  const hint = error instanceof ApiError ? error.hint : null;
  report(`${(error as Error).message}${hint === null ? '' : ` — ${hint}`}`, true);
}

/**
 * A line in the notice area: what an action did, or why it was refused. With `taskId`, the line is
 * about a task that goes on in this console: `followNotice` replaces it by the task's end.
 */
export function report(text: string, bad = false, taskId?: string): void {
  const notice = document.querySelector<HTMLElement>('#notice');
  if (notice === null) return;
  notice.textContent = text;
  notice.className = bad ? 'notice bad' : 'notice';
  notice.hidden = false;
  if (taskId === undefined) delete notice.dataset['task'];
  else notice.dataset['task'] = taskId;
}

/** Statuses a task does not leave. */
export const endedStatuses: ReadonlySet<string> = new Set([
  'succeeded',
  'failed',
  'limit',
  'killed',
  'error',
]);

/** Once the task a notice says goes on has ended, the notice says how it ended instead. */
export async function followNotice(): Promise<void> {
  const notice = document.querySelector<HTMLElement>('#notice');
  const taskId = notice?.dataset['task'];
  if (notice === null || notice === undefined || taskId === undefined || notice.hidden) return;
  const { row } = await get<RunDetail>(`/api/runs/${encodeURIComponent(taskId)}`);
  if (!endedStatuses.has(row.status) || notice.dataset['task'] !== taskId) return;
  report(
    `task ${taskId} ended ${row.status}${row.outcome === null ? '' : `: ${row.outcome}`}`,
    row.status !== 'succeeded',
  );
}
