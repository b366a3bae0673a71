// How a contender process talks to the bench. Cold: the process runs one task with servers started
// for it and exits (0 when the task ended as scripted). Warm: it starts its servers once, says
// `ready`, then runs a task per `run` message and answers with its own wall time for it.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * What every contender gets from the bench (in KEEL_BENCH_SPEC): the scripted model's base URL and
 * name, the workspace, the servers to start (command and args, started in the workspace) and the
 * environment they get on top of the contender's own.
 */
export function readSpec() {
  const text = process.env['KEEL_BENCH_SPEC'];
  if (text === undefined) throw new Error('KEEL_BENCH_SPEC is not set: contenders are started by the bench');
  return JSON.parse(text);
}

/** The environment a contender starts its servers with: its own, plus the bench's. */
export const serverEnv = (spec) => {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  delete env['KEEL_BENCH_SPEC'];
  return { ...env, ...spec.serverEnv };
};

let session;

/** V8's CPU profiler over the measured tasks only (start after the warm-up, stop after the last round). */
async function profile(message) {
  if (message.action === 'start') {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    return;
  }
  const { profile: result } = await session.post('Profiler.stop');
  writeFileSync(message.file, JSON.stringify(result));
  session.disconnect();
}

/**
 * Runs a contender: `start(spec)` connects its servers and returns `{ run, stop }`; `run()` does one
 * task and resolves with its details, or throws.
 */
export async function serveContender(start) {
  const spec = readSpec();
  if (spec.mode === 'cold') {
    const contender = await start(spec);
    try {
      await contender.run();
    } finally {
      await contender.stop();
    }
    process.exit(0);
  }
  const contender = await start(spec);
  process.on('message', (message) => {
    if (message.type === 'run') {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      contender.run().then(
        (detail) => {
          const t1 = performance.now();
          const cpu = process.cpuUsage(cpu0);
          process.send({
            type: 'done',
            wallMs: t1 - t0,
            // The contender process's CPU time over the task (all its threads): its own cost, whatever
            // else the machine runs. The servers and the model are other processes.
            cpuMs: (cpu.user + cpu.system) / 1000,
            startMs: performance.timeOrigin + t0,
            endMs: performance.timeOrigin + t1,
            detail,
          });
        },
        (error) =>
          process.send({ type: 'failed', error: error instanceof Error ? error.stack : String(error) }),
      );
    } else if (message.type === 'profile') {
      void profile(message).then(
        () => process.send({ type: 'profiled' }),
        (error) => process.send({ type: 'failed', error: String(error) }),
      );
    } else if (message.type === 'stop') {
      void contender.stop().finally(() => process.exit(0));
    }
  });
  process.send({ type: 'ready' });
}
