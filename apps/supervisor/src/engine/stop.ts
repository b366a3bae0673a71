import type { LimitKind, TaskStatus } from '@keel/contracts';
import type { LoopKind } from '../limits/loops.js';

/** Why a task stops before its flow ends. A value, handed up through every layer. */
export interface Stop {
  status: Exclude<TaskStatus, 'running' | 'succeeded'>;
  message: string;
  limit?: LimitKind;
  loop?: LoopKind;
  overshoot?: number;
}

export type Step<T> = { ok: true; value: T } | { ok: false; stop: Stop };

export const stopped = (stop: Stop): { ok: false; stop: Stop } => ({ ok: false, stop });
export const done = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
