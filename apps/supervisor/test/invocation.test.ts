import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '@keel/testing';
import { createInvocation, formatCommands, shellWord } from '../src/cli/invocation.js';

const bin = new URL('../dist/bin.js', import.meta.url).pathname;
const shim = new URL('../bin/keel.js', import.meta.url).pathname;
const subcommands = ['run', 'runs', 'approve', 'audit', 'init', 'demo'];
const takesConfig = (words: readonly string[]) => !['init', 'demo'].includes(words[0]!);

describe('how printed commands are written', () => {
  it('says keel only when the keel on PATH is this one (the bin or its package shim, through links)', async () => {
    const linked = await tempDir('keel-linked-');
    symlinkSync(shim, path.join(linked, 'keel'));
    const direct = await tempDir('keel-direct-');
    symlinkSync(bin, path.join(direct, 'keel'));
    const other = await tempDir('keel-other-');
    symlinkSync('/bin/true', path.join(other, 'keel'));
    const prefix = (PATH: string) =>
      createInvocation({ bin, env: { PATH }, cwd: '/', subcommands, takesConfig }).prefix;
    expect([
      prefix(linked),
      prefix(direct),
      prefix(`${other}:${linked}`),
      prefix(`${linked}:${other}`),
      prefix('/nowhere'),
    ]).toEqual(['keel', 'keel', `node ${bin}`, 'keel', `node ${bin}`]);
  });

  it('adds -c only when the config would not be found from where the command is typed', async () => {
    const project = await tempDir('keel-inv-');
    const config = path.join(project, 'keel.config.yaml');
    writeFileSync(config, 'version: 1\n');
    const elsewhere = await tempDir('keel-elsewhere-');
    const keel = createInvocation({
      bin: undefined,
      env: {},
      cwd: path.dirname(project),
      subcommands,
      takesConfig,
    });
    const name = path.basename(project);
    expect([
      keel.command('runs', { config }),
      keel.command('runs', { config, cwd: project }),
      keel.command('runs'),
      createInvocation({
        bin: undefined,
        env: { KEEL_CONFIG: config },
        cwd: '/',
        subcommands,
        takesConfig,
      }).command('runs', { config }),
      createInvocation({ bin: undefined, env: {}, cwd: elsewhere, subcommands, takesConfig }).command(
        'runs',
        {
          config,
        },
      ),
    ]).toEqual([
      `keel runs -c ${name}/keel.config.yaml`,
      'keel runs',
      'keel runs',
      'keel runs',
      `keel runs -c ${config}`,
    ]);
  });

  it('rewrites keel commands inside messages: backticked ones whole, bare ones by their prefix', () => {
    const keel = createInvocation({ bin, env: { PATH: '/nowhere' }, cwd: '/srv', subcommands, takesConfig });
    expect(
      keel.rewrite(
        '`keel runs` lists them; keel approve ap-1 or `keel init DIR`; keel: x; the keel demo app',
        {
          config: '/etc/keel/keel.config.yaml',
        },
      ),
    ).toBe(
      `\`node ${bin} runs -c /etc/keel/keel.config.yaml\` lists them; node ${bin} approve ap-1 or \`node ${bin} init DIR\`; keel: x; the node ${bin} demo app`,
    );
  });

  it('takes the shell directory from INIT_CWD only when the package script is the one running keel', () => {
    const viaScript = createInvocation({
      bin: undefined,
      env: { INIT_CWD: '/home/me/src', npm_lifecycle_script: 'node apps/supervisor/dist/bin.js' },
      cwd: '/checkout',
      subcommands,
      takesConfig,
    });
    const leaked = createInvocation({
      bin: undefined,
      env: { INIT_CWD: '/home/me/src', npm_lifecycle_script: 'vitest run' },
      cwd: '/checkout',
      subcommands,
      takesConfig,
    });
    expect([viaScript.shellCwd, leaked.shellCwd]).toEqual(['/home/me/src', '/checkout']);
  });

  it('quotes what a shell would split, and lays commands out one per line', () => {
    expect([shellWord('/a/b-c.yaml'), shellWord('/my dir/it'), shellWord("it's")]).toEqual([
      '/a/b-c.yaml',
      "'/my dir/it'",
      "'it'\\''s'",
    ]);
    expect(formatCommands([['keel runs', 'all tasks'], ['ls']], 'cd /x')).toBe(
      '  cd /x\n  keel runs\n      all tasks\n  ls',
    );
  });
});
