import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { tempDir } from './tempDir.js';

const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((candidate) => existsSync(candidate));

/** Why nginx tests skip here, or '' when they run. Under CI a missing nginx fails the run. */
export const noNginx =
  nginxBin === undefined ? "Debian's nginx is not installed (apt-get install nginx-light)" : '';
if (noNginx !== '' && process.env['CI'] === 'true') throw new Error(`${noNginx}: .ci/run installs it`);

export interface Balancer {
  /** `http://127.0.0.1:PORT/<name>/mcp` for each upstream group. */
  urls: Record<string, string>;
  /** The upstream address each proxied request went to, in order (from nginx's access log). */
  upstreams(): Promise<string[]>;
}

/**
 * Debian's nginx as an ordinary round-robin HTTP balancer in front of server replicas: each group of
 * replica URLs gets a path prefix. Streaming responses pass through unbuffered; the client's Host
 * header is kept (the servers check it against DNS rebinding). Stopped when the test ends.
 */
export async function startBalancer(groups: Record<string, readonly string[]>): Promise<Balancer> {
  if (nginxBin === undefined) throw new Error(noNginx);
  const dir = await tempDir('keel-nginx-');
  await mkdir(path.join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  const upstreams = Object.entries(groups).map(
    ([name, urls]) =>
      `upstream ${name} {\n${urls.map((url) => `    server ${new URL(url).host};`).join('\n')}\n  }`,
  );
  const locations = Object.keys(groups).map(
    (name) => `    location /${name}/ {\n      proxy_pass http://${name}/;\n    }`,
  );
  const config = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  log_format upstream '$upstream_addr';
  access_log ${dir}/access.log upstream;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $http_host;
  proxy_buffering off;
  proxy_read_timeout 300s;
  ${upstreams.join('\n  ')}
  server {
    listen 127.0.0.1:${port};
${locations.join('\n')}
  }
}
`;
  const configFile = path.join(dir, 'nginx.conf');
  await writeFile(configFile, config);
  const checked = spawnSync(
    nginxBin,
    ['-t', '-p', dir, '-e', path.join(dir, 'error.log'), '-c', configFile],
    {
      encoding: 'utf8',
    },
  );
  if (checked.status !== 0) throw new Error(`nginx refused its config:\n${checked.stderr}\n${config}`);
  const child = spawn(nginxBin, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onTestFinished(async () => {
    // SIGQUIT is nginx's graceful stop; the master takes its worker with it.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
    await exited;
  });
  await waitForPort(port, () => stderr);
  return {
    urls: Object.fromEntries(
      Object.keys(groups).map((name) => [name, `http://127.0.0.1:${port}/${name}/mcp`]),
    ),
    async upstreams() {
      const log = await readFile(path.join(dir, 'access.log'), 'utf8').catch(() => '');
      return log.split('\n').filter((line) => line !== '');
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1');
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}:\n${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
