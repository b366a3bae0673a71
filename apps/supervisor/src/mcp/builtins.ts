import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const builtinServers = {
  filesystem: { packageName: '@keel/server-filesystem', bin: 'keel-filesystem' },
  git: { packageName: '@keel/server-git', bin: 'keel-git' },
  'test-runner': { packageName: '@keel/server-test-runner', bin: 'keel-test-runner' },
  deploy: { packageName: '@keel/server-deploy', bin: 'keel-deploy' },
} as const;
export type BuiltinServer = keyof typeof builtinServers;

const require = createRequire(import.meta.url);

/** The script of a Keel server's bin, resolved from the supervisor's own dependencies (never imported). */
export function builtinBinPath(kind: BuiltinServer): string {
  const { packageName, bin } = builtinServers[kind];
  const manifestPath = require.resolve(`${packageName}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { bin: Record<string, string> };
  const relative = manifest.bin[bin];
  if (relative === undefined) throw new Error(`${packageName} declares no bin ${bin}`);
  return path.join(path.dirname(manifestPath), relative);
}
