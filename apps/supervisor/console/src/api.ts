const pageToken = document.querySelector<HTMLMetaElement>('meta[name="keel-page-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string | null,
  ) {
    super(message);
  }
}

async function answer<T>(res: Response): Promise<T> {
  const body = (await res.json()) as T & { error?: { message: string; hint?: string | null } };
  if (!res.ok)
    throw new ApiError(res.status, body.error?.message ?? res.statusText, body.error?.hint ?? null);
  return body;
}

export async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { headers: { accept: 'application/json' } }));
}

/** A state-changing request: JSON, with the page token the console put in this page. */
export async function post<T>(path: string, body: unknown): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-keel-page-token': pageToken },
      body: JSON.stringify(body),
    }),
  );
}

/** One event stream for the page: `change` when the store changed, `progress` from tasks resumed here. */
export function listen(handlers: { change(): void; progress(data: { taskId: string; line: string }): void }) {
  const source = new EventSource('/api/stream');
  source.addEventListener('change', () => handlers.change());
  source.addEventListener('progress', (event) =>
    handlers.progress(JSON.parse((event as MessageEvent<string>).data) as { taskId: string; line: string }),
  );
  return source;
}
