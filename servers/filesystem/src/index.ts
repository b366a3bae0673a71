import {
  createServer,
  packageVersion,
  type AnyTool,
  type CreateServerOptions,
  type KeelServer,
  type PrepareStep,
} from '@keel/kit';
import type { FsDeps } from './fs/access.js';
import { createFsPolicy, type FilesystemOptions } from './fs/policy.js';
import { filesystemPrepare } from './fs/prepare.js';
import { ripgrepLocator } from './fs/ripgrep.js';
import { applyPatchTool } from './tools/applyPatch.js';
import { createDirectoryTool } from './tools/createDirectory.js';
import { deleteTool } from './tools/delete.js';
import { editFileTool } from './tools/editFile.js';
import { findFilesTool } from './tools/findFiles.js';
import { listDirectoryTool } from './tools/listDirectory.js';
import { listRootsTool } from './tools/listRoots.js';
import { moveTool } from './tools/move.js';
import { readFilesTool } from './tools/readFiles.js';
import { readFileTool } from './tools/readFile.js';
import { searchTextTool } from './tools/searchText.js';
import { statTool } from './tools/stat.js';
import { treeTool } from './tools/tree.js';
import { writeFileTool } from './tools/writeFile.js';

export type { FilesystemOptions } from './fs/policy.js';

/**
 * The filesystem tools, built around one policy (deny globs, whether `.git/` may be written). Each
 * call makes fresh tools with no shared state, so two servers in one process do not interfere.
 */
export function createFilesystemTools(options: FilesystemOptions = {}): AnyTool[] {
  return createFilesystem(options).tools;
}

/**
 * The filesystem tools and the `prepare` step that holds every declared path of every tool to the
 * same policy; pass both to `createServer` (the bin and `createFilesystemServer` do).
 */
export function createFilesystem(options: FilesystemOptions = {}): {
  tools: AnyTool[];
  prepare: PrepareStep;
} {
  const deps: FsDeps = {
    policy: createFsPolicy(options),
    ripgrep: ripgrepLocator(options.ripgrep, () => process.env['PATH']),
    ripgrepMinFiles: options.ripgrepMinFiles ?? 500,
  };
  return { tools: toolsOf(deps), prepare: filesystemPrepare(deps.policy) };
}

function toolsOf(deps: FsDeps): AnyTool[] {
  return [
    listRootsTool(deps),
    readFileTool(deps),
    readFilesTool(deps),
    listDirectoryTool(deps),
    treeTool(deps),
    findFilesTool(deps),
    searchTextTool(deps),
    statTool(deps),
    writeFileTool(deps),
    editFileTool(deps),
    applyPatchTool(deps),
    createDirectoryTool(deps),
    moveTool(deps),
    deleteTool(deps),
  ];
}

/**
 * A filesystem server for library use: the kit's server with these tools, jailed to `server.jail`.
 * Use `createMcpServer()` on the result for any SDK transport, or `callTool` in-process.
 */
export function createFilesystemServer(
  options: FilesystemOptions &
    Omit<CreateServerOptions, 'tools' | 'name' | 'version'> & { name?: string; version?: string },
): KeelServer {
  const { allowGitWrites, deny, ripgrep, ripgrepMinFiles, name, version, ...server } = options;
  const filesystem = createFilesystem({
    ...(allowGitWrites === undefined ? {} : { allowGitWrites }),
    ...(deny === undefined ? {} : { deny }),
    ...(ripgrep === undefined ? {} : { ripgrep }),
    ...(ripgrepMinFiles === undefined ? {} : { ripgrepMinFiles }),
  });
  return createServer({
    ...server,
    prepare: filesystem.prepare,
    name: name ?? 'keel-filesystem',
    version: version ?? packageVersion(new URL('../package.json', import.meta.url)),
    tools: filesystem.tools,
  });
}
