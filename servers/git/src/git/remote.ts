import path from 'node:path';
import { fail, ok, type Outcome, type PathJail } from '@keel/kit';
import type { GitProtocol, ResolvedGitOptions } from './options.js';
import type { Repo } from './repo.js';

export interface RemoteUrl {
  url: string;
  protocol: GitProtocol | 'ext' | 'other';
  /** For local repositories: the real path, checked to be inside the roots. */
  localPath?: string;
}

/** Which transport a URL uses, as git decides it (scp-like `host:path` is ssh; a plain path is local). */
export function protocolOf(url: string): RemoteUrl['protocol'] {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (url.includes('::')) {
    const helper = url.slice(0, url.indexOf('::')).toLowerCase();
    return helper === 'ext' ? 'ext' : 'other';
  }
  if (scheme !== undefined) {
    if (scheme === 'file' || scheme === 'https' || scheme === 'http' || scheme === 'ssh' || scheme === 'git')
      return scheme;
    if (scheme === 'git+ssh' || scheme === 'ssh+git') return 'ssh';
    return 'other';
  }
  // `host:path` without a slash before the colon is ssh; anything else is a local path.
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  if (colon > 0 && (slash === -1 || colon < slash)) return 'ssh';
  return 'file';
}

/**
 * Checks a remote URL against the allowed transports, and a local one against the roots: a local
 * remote outside the roots would let a fetch read (or a push write) any repository on the host.
 */
export async function checkUrl(
  url: string,
  options: ResolvedGitOptions,
  jail: PathJail,
  base: string,
  what: string,
): Promise<Outcome<RemoteUrl>> {
  if (url.startsWith('-'))
    return fail('INVALID_ARGUMENT', `${what} '${url}' starts with '-'`, { hint: 'Pass a URL or a path.' });
  const protocol = protocolOf(url);
  if (protocol === 'ext' || protocol === 'other' || !options.allowProtocols.includes(protocol)) {
    return fail(
      'PERMISSION_DENIED',
      `${what} '${url}' uses the ${protocol === 'other' ? 'unknown' : protocol} transport, which this server does not allow`,
      {
        hint: `Allowed transports: ${options.allowProtocols.join(', ')} (set with --allow-protocol; ext is never allowed).`,
      },
    );
  }
  if (protocol !== 'file') return ok({ url, protocol });
  let local = url;
  if (url.startsWith('file://')) {
    try {
      local = decodeURIComponent(new URL(url).pathname);
    } catch {
      return fail('INVALID_ARGUMENT', `${what} '${url}' is not a valid file URL`, {
        hint: 'Pass a plain path.',
      });
    }
  }
  const resolved = await jail.resolve(path.resolve(base, local));
  if (!resolved.ok) {
    return fail('OUTSIDE_ROOTS', `${what} '${url}' is a local repository outside the roots`, {
      hint: 'Local remotes must be inside the server roots.',
      details: { roots: [...jail.roots] },
    });
  }
  return ok({ url, protocol, localPath: resolved.value.real });
}

/** A configured remote's fetch and push URLs, after `insteadOf` rewriting, all checked. */
export async function checkRemote(
  repo: Repo,
  remote: string,
  options: ResolvedGitOptions,
  jail: PathJail,
  direction: 'fetch' | 'push',
): Promise<Outcome<string[]>> {
  if (remote.startsWith('-') || !/^[A-Za-z0-9._/-]{1,100}$/.test(remote)) {
    return fail('INVALID_ARGUMENT', `'${remote}' is not a remote name`, {
      hint: 'Pass the name of a configured remote, e.g. "origin" (URLs are not accepted here).',
    });
  }
  const result = await repo.git([
    'remote',
    'get-url',
    '--all',
    ...(direction === 'push' ? ['--push'] : []),
    remote,
  ]);
  if (result.exitCode !== 0) {
    const names = (await repo.git(['remote'])).stdout.split('\n').filter(Boolean);
    return fail('NOT_FOUND', `remote '${remote}' is not configured in '${repo.display}'`, {
      hint: `Configured remotes: ${names.join(', ') || '(none)'}.`,
    });
  }
  const urls = result.stdout.split('\n').filter(Boolean);
  for (const url of urls) {
    const checked = await checkUrl(url, options, jail, repo.top, `remote '${remote}' URL`);
    if (!checked.ok) return checked;
  }
  return ok(urls);
}
