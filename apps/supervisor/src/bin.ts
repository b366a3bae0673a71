#!/usr/bin/env node
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createSilentLogger } from '@keel/kit/core';
import { startTelemetry } from '@keel/kit/otel';
import { runCli } from './cli/main.js';
import { systemClock } from './clock.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const kill = new AbortController();
let signals = 0;
const onSignal = (signal: NodeJS.Signals) => {
  signals++;
  if (signals > 1) process.exit(130);
  process.stderr.write(`\nkeel: ${signal}: stopping the task (again to exit at once)\n`);
  kill.abort(new Error(signal));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// `keel kill` in another terminal records the kill in the store, then rings here: each running task
// checks whether it is the one.
const doorbell = new EventEmitter();
process.on('SIGUSR2', () => doorbell.emit('ring'));

const telemetry = await startTelemetry({
  serviceName: 'keel',
  serviceVersion: version,
  env: process.env,
  logger: createSilentLogger(),
});
const code = await runCli({
  argv: process.argv,
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  cwd: process.cwd(),
  version,
  kill: kill.signal,
  killSignals: {
    subscribe(listener) {
      doorbell.on('ring', listener);
      return () => doorbell.off('ring', listener);
    },
  },
  tracer: telemetry.tracer,
  clock: systemClock,
  bin: fileURLToPath(import.meta.url),
});
await telemetry.shutdown();
// A large --json answer to a pipe is still being written: exit once stdout has taken it all.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);
