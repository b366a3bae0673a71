import type { ToolResult } from '../mcp/servers.js';

/** What trust needs to know of a configured server: its name and which Keel server it is, if any. */
export interface TrustedServer {
  name: string;
  kind: string;
}

/** Decides whether one tool result may reach a model without tainting the task. */
export interface Trust {
  trusts(server: string, tool: string, args: Record<string, unknown>, result: ToolResult): boolean;
}

/**
 * Strings a result may carry that are not from the call and still say nothing: names, hashes,
 * counts, ids, dates and paths without spaces. Anything with whitespace or markup is prose, and
 * prose in a result that the call did not write came from the world.
 */
const inert = /^[\w./@:+=~,-]{0,200}$/;

/**
 * Trust is keyed by server and tool, and holds only for results that echo the call.
 *
 * An entry `server.tool` trusts that tool of the server configured under that name; a bare `tool`
 * trusts it only on Keel's own servers (`builtin:`), never on a `command:` or `url:` server, which
 * may offer a tool of the same name. A trusted tool's result is trusted only when it succeeded and
 * every string in it (its structured content, or its text when it has none) is inert or appears in
 * the call's own arguments: an error, or a listing that names files the call never named, taints.
 */
export function createTrust(entries: readonly string[], servers: Iterable<TrustedServer>): Trust {
  const kinds = new Map([...servers].map((s) => [s.name, s.kind]));
  const pairs = new Set<string>();
  const onBuiltins = new Set<string>();
  for (const entry of entries) {
    const dot = entry.indexOf('.');
    if (dot > 0 && kinds.has(entry.slice(0, dot))) pairs.add(entry);
    else onBuiltins.add(entry);
  }
  const listed = (server: string, tool: string) =>
    pairs.has(`${server}.${tool}`) ||
    (onBuiltins.has(tool) && kinds.get(server) !== undefined && kinds.get(server) !== 'external');
  return {
    trusts(server, tool, args, result) {
      if (!listed(server, tool) || result.isError) return false;
      return echoes(args, result.structured === undefined ? result.text : result.structured);
    },
  };
}

/** Whether every string in `said` is inert or written by the call (`args`, as a whole or a part of one). */
export function echoes(args: unknown, said: unknown): boolean {
  const written = stringsIn(args);
  return stringsIn(said).every((s) => inert.test(s) || written.some((w) => w.includes(s)));
}

/** Every string in a JSON value, object keys included (a record's keys can be anything). */
function stringsIn(value: unknown, depth = 0): string[] {
  if (depth > 32) return ['[too deep]'];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap((v) => stringsIn(v, depth + 1));
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => [k, ...stringsIn(v, depth + 1)]);
  return [];
}
