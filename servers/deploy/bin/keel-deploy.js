#!/usr/bin/env node
// The installed command. pnpm links bins when it installs, before anything is built: this file
// exists from the start (so the link never fails) and runs the built bin.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(built)) {
  process.stderr.write(
    `${fileURLToPath(new URL('..', import.meta.url))} is not built yet: run \`pnpm build\` first\n`,
  );
  process.exit(1);
}
await import(built.href);
