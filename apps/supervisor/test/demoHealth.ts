import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface DemoHealthServer {
  url: string;
  close(): Promise<void>;
}

/**
 * An HTTP health endpoint for the demo app (`createDemoProject(dir, { stagingHealthUrl })`), for the
 * tests of an endpoint outside the project — one a replay may find gone. On 127.0.0.1: `GET /health` loads the live release's `math.js`
 * (through the `current` link, fresh each time) and answers 200 only if it adds and averages
 * correctly — so a broken build deployed to staging is rolled back by the deploy server. A function
 * for `deployRoot` is asked on every check (a replay moves the target).
 */
export async function startDemoHealthServer(deployRoot: string | (() => string)): Promise<DemoHealthServer> {
  let checks = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/health') {
      res.writeHead(404).end();
      return;
    }
    const module = path.join(
      typeof deployRoot === 'string' ? deployRoot : deployRoot(),
      'current',
      'math.js',
    );
    if (!existsSync(module)) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('no live release\n');
      return;
    }
    checks++;
    import(`${pathToFileURL(module).href}?check=${checks}`)
      .then((math: { add(a: number, b: number): number; average(v: number[]): number }) => {
        const ok = math.add(2, 3) === 5 && math.average([2, 4, 6]) === 4 && math.average([]) === 0;
        res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'math is wrong\n');
      })
      .catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
