// Keel as a warm contender: a worker-like loop in one process — `runTask` per task against one
// SQLite task store, the servers from the server pool `keel worker` uses (kept up between tasks),
// the model through the OpenAI-compatible adapter. Metered (spec.meter), the store, the model and
// the server connections are wrapped from the outside with timers, so the harness's overhead can be
// split into record writes, the model adapter and the MCP client (wall and CPU time) without a hook
// in Keel's code; the meters cost time themselves, so the ratios use the unmetered run.
import {
  createOpenAICompatibleModel,
  createSqliteTaskStore,
  loadConfig,
  parseTaskFile,
  runTask,
} from '@keel/supervisor';
import * as supervisor from '@keel/supervisor';
import { serveContender } from './contender.mjs';

/**
 * The server pool `keel worker` uses. The supervisor's entry does not export it (yet), so it is
 * taken from the built package's own module, the same instance `runTask` imports.
 */
async function serverPool() {
  const exported = Reflect.get(supervisor, 'createServerPool');
  const { createServerPool } =
    typeof exported === 'function'
      ? { createServerPool: exported }
      : await import(new URL('dist/mcp/pool.js', import.meta.resolve('@keel/supervisor/package.json')).href);
  return createServerPool({ maxIdle: 1 });
}

/**
 * Wall and CPU time spent inside calls, per part. The worker runs one task at a time and the engine
 * awaits each of these calls before its next step, so the process's CPU time during a call is that
 * call's cost (client-side: the servers and the model are other processes).
 */
function createMeter() {
  const parts = {};
  return {
    parts,
    reset: () => {
      for (const key of Object.keys(parts)) delete parts[key];
    },
    async time(part, work) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      try {
        return await work();
      } finally {
        const cpu = process.cpuUsage(cpu0);
        const entry = (parts[part] ??= { wallMs: 0, cpuMs: 0, calls: 0 });
        entry.wallMs += performance.now() - t0;
        entry.cpuMs += (cpu.user + cpu.system) / 1000;
        entry.calls++;
      }
    },
  };
}

/** `target` with each of its async methods timed as part `store.<method>`. */
function timedStore(target, meter) {
  return new Proxy(target, {
    get(object, key) {
      const value = Reflect.get(object, key);
      if (typeof value !== 'function') return value;
      return (...args) => meter.time(`store.${String(key)}`, () => value.apply(object, args));
    },
  });
}

await serveContender(async (spec) => {
  let telemetry;
  if (spec.supervisorTraces !== undefined) {
    // The supervisor's own spans, exported as `keel run` exports them when OTEL_* asks.
    Object.assign(process.env, spec.supervisorTraces);
    const { startTelemetry } = await import('@keel/kit/otel');
    const { createSilentLogger } = await import('@keel/kit');
    telemetry = await startTelemetry({
      serviceName: 'keel',
      serviceVersion: 'bench',
      env: process.env,
      logger: createSilentLogger(),
    });
  }
  const loaded = loadConfig(spec.keelConfig);
  const task = parseTaskFile(spec.keelTask, 'bench task');
  const meter = createMeter();
  const plainStore = createSqliteTaskStore(loaded.stateDir);
  const store = timedStore(plainStore, meter);
  const pool = await serverPool();
  const originals = new WeakMap();
  const servers = {
    acquire: (configs, options) =>
      meter.time('pool', async () => {
        const wrapped = new Map();
        for (const [name, server] of await pool.acquire(configs, options)) {
          const copy = { ...server, call: (...args) => meter.time('mcp', () => server.call(...args)) };
          originals.set(copy, server);
          wrapped.set(name, copy);
        }
        return wrapped;
      }),
    release: (leased, reusable) =>
      meter.time('pool', () =>
        pool.release(new Map([...leased].map(([name, s]) => [name, originals.get(s) ?? s])), reusable),
      ),
  };
  const adapter = createOpenAICompatibleModel({ baseURL: spec.baseURL, model: spec.model });
  const chat = { ...adapter, generate: (...args) => meter.time('model', () => adapter.generate(...args)) };
  // Unmetered, it is a worker as `keel worker` runs one: the plain store, the pool, the config's model.
  const options = spec.meter
    ? { store, servers, models: { [spec.keelModelKey]: chat } }
    : { store: plainStore, servers: pool };
  const env = { ...process.env, ...spec.serverEnv };
  delete env['KEEL_BENCH_SPEC'];
  return {
    async run() {
      meter.reset();
      const { run } = await runTask({ loaded, task, env, tracer: telemetry?.tracer, ...options });
      if (run.status !== 'succeeded')
        throw new Error(`keel task ${run.id} ended ${run.status}: ${run.outcome.message}`);
      return { steps: run.steps, parts: structuredClone(meter.parts) };
    },
    async stop() {
      await pool.close();
      await plainStore.close();
      await telemetry?.shutdown();
    },
  };
});
