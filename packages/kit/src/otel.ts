import type { Tracer } from '@opentelemetry/api';
import type { Logger } from './logger.js';

export interface Telemetry {
  /** A tracer from the configured provider, or undefined when tracing is off. */
  tracer: Tracer | undefined;
  shutdown(): Promise<void>;
}

/** Whether the standard OTEL_* variables ask for trace export. */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env['OTEL_SDK_DISABLED'] === 'true') return false;
  const exporter = env['OTEL_TRACES_EXPORTER'];
  if (exporter !== undefined)
    return exporter
      .split(',')
      .map((s) => s.trim())
      .includes('otlp');
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

/**
 * Switches on OTLP/HTTP trace export when the OTEL_* environment asks for it (endpoint, headers and
 * the rest are read by the exporter itself). For bins and the supervisor only: libraries use
 * `@opentelemetry/api` and inherit whatever provider the host registered. The SDK packages are
 * optional peers, loaded only here.
 */
export async function startTelemetry(options: {
  serviceName: string;
  serviceVersion: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}): Promise<Telemetry> {
  if (!tracingRequested(options.env)) return { tracer: undefined, shutdown: async () => {} };
  try {
    const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] =
      await Promise.all([
        import('@opentelemetry/sdk-trace-node'),
        import('@opentelemetry/exporter-trace-otlp-http'),
        import('@opentelemetry/resources'),
      ]);
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({
        'service.name': options.env['OTEL_SERVICE_NAME'] ?? options.serviceName,
        'service.version': options.serviceVersion,
      }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    });
    provider.register();
    options.logger.info('OTLP trace export on');
    return {
      tracer: provider.getTracer(options.serviceName, options.serviceVersion),
      shutdown: () => provider.shutdown(),
    };
  } catch (error) {
    options.logger.error(
      'OTLP trace export was requested but the OpenTelemetry SDK could not be loaded; tracing is off',
      {
        error,
        hint: 'Install @opentelemetry/sdk-trace-node, @opentelemetry/exporter-trace-otlp-http and @opentelemetry/resources.',
      },
    );
    return { tracer: undefined, shutdown: async () => {} };
  }
}
