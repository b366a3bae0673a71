import type { RegisterCommand } from './context.js';
import { registerEval } from './eval.js';
import { registerReplay } from './replay.js';
import { registerStats } from './stats.js';
import { registerTrace } from './trace.js';

/** `keel trace`, `keel stats`, `keel replay`, `keel eval`: registered by `runCli`. */
export const observabilityCommands: readonly RegisterCommand[] = [
  registerTrace,
  registerStats,
  registerReplay,
  registerEval,
];
