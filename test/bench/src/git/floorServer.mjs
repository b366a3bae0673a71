#!/usr/bin/env node
// The floor for the git benchmark: a bare v2 SDK server whose tools run the same git command as the
// raw reference (execFile, no parsing, the output returned as one text block). What it adds over raw
// git is what any stdio MCP server in Node pays for one git process per call: the JSON-RPC round trip
// and a spawn from a server process. Keel's distance to it is the cost of Keel itself.
import { execFile } from 'node:child_process';
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import * as z from 'zod';

const env = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
};
const commands = JSON.parse(process.env.KEEL_BENCH_GIT_COMMANDS ?? '{}');

serveStdio(() => {
  const server = new McpServer({ name: 'git-floor', version: '0.0.0' }, { capabilities: { tools: {} } });
  for (const [name, args] of Object.entries(commands)) {
    server.registerTool(
      name,
      { description: `git ${args.join(' ')}`, inputSchema: z.object({ repo: z.string() }) },
      ({ repo }) =>
        new Promise((resolve, reject) =>
          execFile('git', args, { cwd: repo, env, maxBuffer: 256 * 1024 * 1024 }, (error, stdout) =>
            error ? reject(error) : resolve({ content: [{ type: 'text', text: stdout }] }),
          ),
        ),
    );
  }
  return server;
});
