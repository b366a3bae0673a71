import { randomBytes } from 'node:crypto';

/** `t-20261130-081502-3fa2c1`: sortable, unique enough for one store. */
export function newTaskId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `t-${stamp}-${randomBytes(3).toString('hex')}`;
}
