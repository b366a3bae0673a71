#!/usr/bin/env node
import { collect, nonNegativeInt, packageVersion, runServerCli } from '@keel/kit/cli';
import { createFilesystem } from './index.js';

const code = await runServerCli<{
  allowGitWrites: boolean;
  deny?: string[];
  ripgrep?: string | boolean;
  ripgrepMinFiles?: number;
}>({
  name: 'keel-filesystem',
  bin: 'keel-filesystem',
  version: packageVersion(new URL('../package.json', import.meta.url)),
  description:
    'The Keel filesystem MCP server: bounded reads, content search, capped trees and safe, atomic edits inside the roots.',
  argv: process.argv,
  env: process.env,
  configure: (program) => {
    program
      .option(
        '--allow-git-writes',
        'allow writes into .git/ directories (refused by default: they can make git run arbitrary code)',
        false,
      )
      .option(
        '--deny <glob>',
        'a glob, relative to a root, that no tool may read, write or list (repeatable)',
        collect,
      )
      .option(
        '--ripgrep <path>',
        'the rg binary search_text uses to pick files to read (default: rg on the PATH)',
      )
      .option('--no-ripgrep', 'search file contents with the built-in JavaScript search alone')
      .option(
        '--ripgrep-min-files <n>',
        'search_text walks this many files before handing a search to ripgrep (default 500)',
        nonNegativeInt('--ripgrep-min-files'),
      );
  },
  helpText: `
Example:
  keel-filesystem --root . --deny '**/.env' --deny 'secrets/**'
`,
  build: ({ options }) => ({
    ...createFilesystem({
      allowGitWrites: options.allowGitWrites,
      deny: options.deny ?? [],
      ...(options.ripgrep === false || typeof options.ripgrep === 'string'
        ? { ripgrep: options.ripgrep }
        : {}),
      ...(options.ripgrepMinFiles === undefined ? {} : { ripgrepMinFiles: options.ripgrepMinFiles }),
    }),
    instructions:
      'Filesystem tools confined to the roots (list_roots). Read with read_file/read_files (bounded, with cursors), explore with tree/find_files/search_text, change files with edit_file (exact replacements), apply_patch (unified diffs) or write_file (whole files, atomic). Pass the sha256 from a read as expectedSha256 to avoid overwriting concurrent changes.',
  }),
});
process.exit(code);
