import type { Tool } from '@modelcontextprotocol/client';

export interface SchemaServer {
  name: string;
  package: string;
  args: string[];
}
export const schemaServers: SchemaServer[];
export const startMarker: string;
export const endMarker: string;
export function modelFacing(tool: Tool): {
  name: string;
  description: string;
  inputSchema: Tool['inputSchema'];
};
export function measureTool(tool: Tool): { name: string; bytes: number; tokens: number };
export function listServerTools(server: SchemaServer): Promise<Tool[]>;
export function renderSchemaTable(tools: readonly Tool[]): string;
export function replaceSection(readme: string, section: string, readmePath: string): string;
export function readmePath(server: SchemaServer): string;
export function renderReadmes(): Promise<
  Array<{ server: SchemaServer; file: string; current: string; expected: string }>
>;
