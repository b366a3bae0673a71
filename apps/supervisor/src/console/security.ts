import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** 127.0.0.0/8, ::1 and localhost: the binds whose Host header is checked against DNS rebinding. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export const accessCookie = 'keel_console_token';

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

/**
 * The console's guards, like the servers' HTTP transport: a Host check against DNS rebinding on
 * loopback, an access token as a cookie or bearer on every request (loopback too: any local process
 * can reach 127.0.0.1, and an approval must come from a person), and for every
 * state-changing request both an Origin equal to the console's own and a page token the console put
 * in the page it served (HMAC-signed per page load, so no list of issued tokens is kept).
 */
export function createGuards(options: { host: string; port: () => number; token: string }) {
  const secret = randomBytes(32);
  const sign = (nonce: string) => createHmac('sha256', secret).update(nonce).digest('base64url');
  const loopback = isLoopback(options.host);
  return {
    /** A fresh token for one page. */
    pageToken(): string {
      const nonce = randomBytes(16).toString('base64url');
      return `${nonce}.${sign(nonce)}`;
    },
    /** On loopback, only the console's own names: a rebound DNS name reaching 127.0.0.1 is refused. */
    hostAllowed(req: IncomingMessage): boolean {
      if (!loopback) return true;
      const port = options.port();
      const allowed = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${options.host}:${port}`];
      return allowed.includes(req.headers.host ?? '');
    },
    hasAccess(req: IncomingMessage): boolean {
      const auth = req.headers.authorization;
      const given = auth?.startsWith('Bearer ') ? auth.slice(7) : cookie(req, accessCookie);
      return given !== undefined && same(given, options.token);
    },
    tokenMatches(given: string): boolean {
      return same(given, options.token);
    },
    /** Why a state-changing request is refused, or undefined when it may go on. */
    crossSiteRefusal(req: IncomingMessage): string | undefined {
      const origin = req.headers.origin;
      if (origin === undefined || origin !== `http://${req.headers.host ?? ''}`)
        return `origin ${origin ?? '(none)'} is not this console's`;
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') return `sec-fetch-site is ${String(site)}`;
      const given = req.headers['x-keel-page-token'];
      if (typeof given !== 'string') return 'no page token';
      const [nonce, mac] = given.split('.');
      if (nonce === undefined || mac === undefined || !same(mac, sign(nonce))) return 'bad page token';
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return 'not JSON';
      return undefined;
    },
  };
}

export type Guards = ReturnType<typeof createGuards>;
