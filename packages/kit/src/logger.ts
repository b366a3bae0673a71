import type { Writable } from 'node:stream';

export const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/**
 * A structured logger writing one JSON object per line. Servers pass stderr: on stdio, stdout is the
 * protocol channel and a stray byte there breaks the client.
 */
export function createLogger(options: {
  level?: LogLevel;
  stream: Writable;
  fields?: Record<string, unknown>;
}): Logger {
  const threshold = rank[options.level ?? 'info'];
  const base = options.fields ?? {};
  const write = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: Record<string, unknown>) => {
    if (rank[level] < threshold) return;
    const line = { time: new Date().toISOString(), level, msg: message, ...base, ...fields };
    options.stream.write(`${JSON.stringify(line, errorReplacer)}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything, for library use where the host wires its own. */
export function createSilentLogger(): Logger {
  const logger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => logger };
  return logger;
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}
