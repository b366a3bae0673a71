// A static file server over a deploy root's `current`, as a web server in front of it would be: each
// request resolves `current` once and reads the release marker and the asked file from that one
// directory. Prints {"port": N} on stdout when listening; ends when its parent closes stdin.
import { readFile, realpath } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';

const [current] = process.argv.slice(2);

async function serve(request, response) {
  try {
    const dir = await realpath(current);
    const file = decodeURIComponent(new URL(request.url ?? '/', 'http://127.0.0.1').pathname).slice(1);
    const [marker, body] = await Promise.all([
      readFile(path.join(dir, 'release.txt'), 'utf8'),
      readFile(path.join(dir, file)),
    ]);
    response.writeHead(200, {
      'content-length': body.length,
      'x-release': marker.trim(),
      'x-release-dir': path.basename(dir),
    });
    response.end(body);
  } catch (error) {
    const code = error?.code ?? 'ERROR';
    response.writeHead(code === 'ENOENT' ? 404 : 500, { 'x-error': String(code) });
    response.end();
  }
}

const server = createServer((request, response) => void serve(request, response));
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
