import { ApiError } from './api.js';

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

/** A line in the notice area: what an action did, or why it was refused. */
export function report(text: string, bad = false): void {
  const notice = document.querySelector<HTMLElement>('#notice');
  if (notice === null) return;
  notice.textContent = text;
  notice.className = bad ? 'notice bad' : 'notice';
  notice.hidden = false;
}
