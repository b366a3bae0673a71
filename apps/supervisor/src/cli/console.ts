import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import { isLoopback } from '../console/security.js';
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
    .option(
      '--host <host>',
      'address to bind; beyond loopback set KEEL_CONSOLE_TOKEN (on loopback a token is made at start and printed in the URL)',
      '127.0.0.1',
    )
    .action(async (opts: { config?: string; port: number; host: string }) => {
      await ctx.withStore(opts.config, async (loaded, store) => {
        // A login on loopback too: any process on the machine (a test the agent wrote) can reach
        // 127.0.0.1, so only the person who started the console, and sees its URL, gets in.
        const fromEnv = ctx.io.env['KEEL_CONSOLE_TOKEN'] || undefined;
        // Beyond loopback the token is the operator's own secret, set on purpose: none is made up.
        const token = fromEnv ?? (isLoopback(opts.host) ? randomBytes(24).toString('base64url') : '');
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
          `keel console on ${fromEnv === undefined ? `${server.url}?token=${token}` : `${server.url} (open it with ?token=<KEEL_CONSOLE_TOKEN>)`}\nCtrl-C stops it`,
        );
        await new Promise<void>((resolve) => {
          if (ctx.io.kill.aborted) resolve();
          else ctx.io.kill.addEventListener('abort', () => resolve(), { once: true });
        });
        await server.close();
      });
    });
}
