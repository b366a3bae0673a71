import path from 'node:path';
import type { LoadedConfig } from './load.js';

/** Flags of the built-in servers that name a file the server reads: its config, a trusted key. */
const fileFlags = new Set(['--config', '--approval-key']);

/** The files a server's arguments name through `fileFlags` (`--config X` or `--config=X`), resolved against `cwd`. */
export function serverConfigFiles(args: readonly string[], cwd: string): string[] {
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    if (eq > 0 && fileFlags.has(arg.slice(0, eq))) files.push(path.resolve(cwd, arg.slice(eq + 1)));
    else if (fileFlags.has(arg) && args[i + 1] !== undefined) files.push(path.resolve(cwd, args[++i]!));
  }
  return files;
}

/**
 * Keel's own files for a config: the config itself, the state dir (task store, server state,
 * keys kept there), the approval signing key, every agent's prompt file, every file a built-in
 * server reads (`keel.deploy.yaml`, the test-runner's config, the deploy server's trusted key) and
 * the task files given. Every built-in server the supervisor starts denies them to every tool
 * (`--deny-path`), so an agent can neither read a key nor edit the policy it runs under.
 */
export function keelOwnFiles(loaded: LoadedConfig, taskFiles: readonly string[] = []): string[] {
  const { config } = loaded;
  const files = [loaded.file, loaded.stateDir];
  if (config.approvals.signingKey !== undefined)
    files.push(path.resolve(loaded.dir, config.approvals.signingKey));
  for (const agent of Object.values(config.agents))
    if (agent?.prompt !== undefined) files.push(path.resolve(loaded.dir, agent.prompt));
  for (const server of Object.values(config.servers))
    if ('builtin' in server) files.push(...serverConfigFiles(server.args, loaded.workspace));
  files.push(...taskFiles.map((file) => path.resolve(file)));
  return [...new Set(files)];
}
