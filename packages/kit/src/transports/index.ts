export { serveStdio, type StdioHandle } from './stdio.js';
export { isLoopbackHost, serveHttp, type HttpHandle, type HttpOptions } from './http.js';
