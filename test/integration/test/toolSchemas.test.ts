import { describe, expect, it } from 'vitest';
import {
  listServerTools,
  measureTool,
  renderReadmes,
  renderSchemaTable,
  schemaServers,
} from '../scripts/toolSchemas.mjs';

describe("the tool-schema tables in the servers' READMEs", () => {
  it('each README shows what its bin lists now (when this fails: pnpm docs:schemas)', async () => {
    const readmes = await renderReadmes();
    expect(readmes.map((r) => r.server.name)).toEqual(['filesystem', 'git', 'test-runner', 'deploy']);
    expect(readmes.filter((r) => r.current !== r.expected).map((r) => r.file)).toEqual([]);
  });

  it('a longer description changes its row and the total, so a committed table goes stale', async () => {
    const tools = await listServerTools(schemaServers.find((s) => s.name === 'deploy')!);
    const before = tools.map(measureTool);
    const longer = tools.map((tool) =>
      tool.name === 'health_check'
        ? { ...tool, description: `${tool.description} Twelve more bytes.` }
        : tool,
    );
    const after = longer.map(measureTool);
    const row = (table: string, name: string) =>
      table.split('\n').find((line) => line.startsWith(`| \`${name}\``));
    const health = (list: typeof before) => list.find((m) => m.name === 'health_check')!;
    expect(health(after).bytes - health(before).bytes).toBe(19);
    expect(health(after).tokens - health(before).tokens).toBe(4);
    expect(row(renderSchemaTable(longer), 'health_check')).not.toBe(
      row(renderSchemaTable(tools), 'health_check'),
    );
    expect(renderSchemaTable(longer)).not.toBe(renderSchemaTable(tools));
  });
});
