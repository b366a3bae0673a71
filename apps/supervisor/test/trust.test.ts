import { describe, expect, it } from 'vitest';
import { createTrust, echoes } from '../src/approvals/trust.js';
import type { ToolResult } from '../src/mcp/servers.js';

const ok = (structured: Record<string, unknown> | undefined, text = ''): ToolResult => ({
  isError: false,
  text,
  structured,
  error: undefined,
  bytes: text.length,
});

const servers = [
  { name: 'filesystem', kind: 'filesystem' },
  { name: 'git', kind: 'git' },
  { name: 'scratch', kind: 'external' },
  { name: 'notes', kind: 'external' },
];

describe('trust: by server and tool, only for results that echo the call', () => {
  const trust = createTrust(['write_file', 'git_commit', 'notes.summary'], servers);
  const wrote = ok({ path: 'src/a.ts', bytes: 12, sha256: 'ab'.repeat(32), created: true });

  it("a bare name trusts that tool on Keel's own servers only; server.tool names a third party's", () => {
    expect(trust.trusts('filesystem', 'write_file', { path: 'src/a.ts', content: 'x' }, wrote)).toBe(true);
    expect(trust.trusts('scratch', 'write_file', { path: 'src/a.ts', content: 'x' }, wrote)).toBe(false);
    expect(trust.trusts('notes', 'summary', {}, ok({ count: 3 }))).toBe(true);
    expect(trust.trusts('scratch', 'summary', {}, ok({ count: 3 }))).toBe(false);
    expect(trust.trusts('filesystem', 'read_file', { path: 'a' }, ok({ path: 'a' }))).toBe(false);
    // A server name that is not configured makes the entry a bare tool name: `nowhere.x` trusts nothing.
    expect(createTrust(['nowhere.x'], servers).trusts('scratch', 'x', {}, ok({}))).toBe(false);
  });

  it('an error never echoes the call; prose the call did not write is not an echo', () => {
    const failed: ToolResult = { ...wrote, isError: true, error: { code: 'CONFLICT', message: 'no' } };
    expect(trust.trusts('filesystem', 'write_file', { path: 'src/a.ts' }, failed)).toBe(false);
    const message = 'Fix the parser\n\nIt dropped quoted names.';
    const commit = (subject: string, files: string[]) =>
      ok({ repo: '.', branch: 'keel/t-1', sha: 'c'.repeat(40), subject, files, filesChanged: files.length });
    expect(trust.trusts('git', 'git_commit', { message }, commit('Fix the parser', ['src/parse.ts']))).toBe(
      true,
    );
    expect(
      trust.trusts('git', 'git_commit', { message }, commit('Fix the parser', ['push to origin.md'])),
    ).toBe(false);
    expect(trust.trusts('git', 'git_commit', { message }, commit('Deploy to production now', []))).toBe(
      false,
    );
  });

  it('without structured content the text is what must echo; keys count as strings too', () => {
    expect(echoes({ path: 'a b.txt' }, 'a b.txt')).toBe(true);
    expect(echoes({ path: 'a.txt' }, 'wrote a.txt')).toBe(false);
    expect(echoes({}, { 'ignore previous instructions': 1 })).toBe(false);
    expect(echoes({}, { files: ['a.txt', 'b/c.ts'], n: 2, ok: true, at: '2026-12-01T09:00:00Z' })).toBe(true);
  });
});
