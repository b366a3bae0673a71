import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRawStdio, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, copyFixture, hostPid, processesIn, settledProcessesIn } from './helpers.js';

// A test that ignores SIGTERM and sleeps for ten minutes: only a SIGKILL to its group ends it early.
const stubbornTest = `const { it } = require('node:test');
const { writeFileSync } = require('node:fs');
const path = require('node:path');

it('sleeps through SIGTERM', async () => {
  process.on('SIGTERM', () => {});
  writeFileSync(path.join(__dirname, '..', 'sleeping.pid'), String(process.pid));
  await new Promise((resolve) => setTimeout(resolve, 600_000));
});
`;

/** Running, as opposed to gone or a zombie waiting for whichever process adopted it to reap it. */
const isRunning = async (pid: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The state letter follows the parenthesised command name, which may itself contain spaces.
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
};

describe('no test process outlives its server', () => {
  it.each(['stdin closed', 'SIGTERM'] as const)(
    'kills the run of a sleeping test when the server ends (%s)',
    async (how) => {
      const dir = await copyFixture('node-test');
      await writeFile(path.join(dir, 'test', 'sleep.test.js'), stubbornTest);
      const stateDir = await tempDir('keel-tr-state-');
      const session = startRawStdio({
        command: process.execPath,
        args: [binPath, '--root', dir, '--state-dir', stateDir, '--log-level', 'warn'],
      });
      const exited = new Promise<number | null>((resolve) => session.child.once('exit', resolve));
      session.initialize();
      session.send({
        id: 1,
        method: 'tools/call',
        params: { name: 'run_tests', arguments: { files: ['test/sleep.test.js'], timeoutMs: 600_000 } },
      });
      const pidFile = path.join(dir, 'sleeping.pid');
      for (let i = 0; i < 600; i++) {
        if (
          await access(pidFile).then(
            () => true,
            () => false,
          )
        )
          break;
        await sleep(50);
      }
      const sleeper = await hostPid(dir, Number(await readFile(pidFile, 'utf8')));
      if (sleeper === undefined) throw new Error('the sleeping test process was not found');
      // The event this test is about: a test process is running under the server when it ends.
      expect(await isRunning(sleeper)).toBe(true);
      expect(await processesIn(dir)).toContain(sleeper);

      if (how === 'stdin closed') session.child.stdin.end();
      else session.child.kill('SIGTERM');
      expect(await exited).toBe(0);

      expect(await settledProcessesIn(dir)).toEqual([]);
      expect(await isRunning(sleeper)).toBe(false);
      // With SIGTERM the client is still there: the call gets its answer (cancelled) before the server
      // goes. With stdin closed the client is gone, and no answer is owed.
      const answer = session.messages().find((message) => message.id === 1);
      expect({ how, isError: how === 'SIGTERM' ? answer?.result?.['isError'] : 'client gone' }).toEqual({
        how,
        isError: how === 'SIGTERM' ? true : 'client gone',
      });
    },
  );
});
