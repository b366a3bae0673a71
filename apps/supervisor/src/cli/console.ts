import { InvalidArgumentError, type Command } from 'commander';
import type { CliContext } from './cliContext.js';

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('--port must be 0..65535');
  return n;
};

/** `keel console`: serves the web console until Ctrl-C. */
export function registerConsoleCommand(program: Command, ctx: CliContext): void {
  program
    .command('console')
    .description(
      'the web console: runs, traces, approvals, the kill switch and stats in a browser, from this config’s task store',
    )
    .addOption(ctx.configOption())
    .option('--port <n>', 'port (0: any free one)', port, 7373)
    .option('--host <host>', 'address to bind; beyond loopback KEEL_CONSOLE_TOKEN is required', '127.0.0.1')
    .action(async (opts: { config?: string; port: number; host: string }) => {
      await ctx.withStore(opts.config, async (loaded, store) => {
        const token = ctx.io.env['KEEL_CONSOLE_TOKEN'] || undefined;
        const { env, tracer, killSignals } = ctx.runOptions(true);
        // Loaded here, like the engine in keel run: other commands do not pay for it.
        const { startConsole } = await import('../console/server.js');
        const server = await startConsole({
          loaded,
          store,
          host: opts.host,
          port: opts.port,
          token,
          runOptions: {
            env,
            kill: ctx.io.kill,
            tracer,
            clock: ctx.io.clock,
            ...(killSignals === undefined ? {} : { killSignals }),
          },
        });
        ctx.out(
          `keel console on ${server.url}${token === undefined ? '' : ' (open it with ?token=<KEEL_CONSOLE_TOKEN>)'}\nCtrl-C stops it`,
        );
        await new Promise<void>((resolve) => {
          if (ctx.io.kill.aborted) resolve();
          else ctx.io.kill.addEventListener('abort', () => resolve(), { once: true });
        });
        await server.close();
      });
    });
}
