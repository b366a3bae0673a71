import path from 'node:path';
import { defaultStateDir, KeelError, openStoreBackend } from '@keel/kit';
import type { Command, SubcommandContext } from '@keel/kit/cli';
import { resolveInterrupted } from '../deploy/resolve.js';

/** `keel-deploy resolve <environment> --live <releaseId|none>`: a person settles an interrupted deploy. */
export function registerResolveCommand(program: Command, context: SubcommandContext): void {
  program
    .command('resolve')
    .description(
      'record what is live after an interrupted deploy the server could not reconcile (UNKNOWN_STATE): the interrupted release, or what was live before it',
    )
    .argument('<environment>', 'the environment')
    .requiredOption('--live <releaseId>', "the release that is live on the target, or 'none'")
    .option(
      '--state-dir <dir>',
      "the server's state directory (env KEEL_STATE_DIR)",
      defaultStateDir(context.env),
    )
    .option(
      '--store <url>',
      'the PostgreSQL store the server replicas share, instead of the state directory (env KEEL_DATABASE_URL)',
      context.env['KEEL_DATABASE_URL'],
    )
    .action(async (environment: string, options: { live: string; stateDir: string; store?: string }) => {
      let backend;
      try {
        backend = await openStoreBackend({ store: options.store, stateDir: path.resolve(options.stateDir) });
      } catch (error) {
        if (!(error instanceof KeelError)) throw error;
        process.stderr.write(`${error.message}\n${error.hint === undefined ? '' : `${error.hint}\n`}`);
        context.setExitCode(2);
        return;
      }
      try {
        const result = await resolveInterrupted(
          backend.state('deploy'),
          environment,
          options.live === 'none' ? null : options.live,
          Date.now(),
        );
        (result.ok ? process.stdout : process.stderr).write(`${result.message}\n`);
        context.setExitCode(result.ok ? 0 : 2);
      } finally {
        await backend.close();
      }
    });
}
