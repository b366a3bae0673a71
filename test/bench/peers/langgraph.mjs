// LangGraph.js as a contender: langchain's createAgent (a LangGraph graph) with ChatOpenAI pointed at
// the scripted server, the three Keel servers through @langchain/mcp-adapters over stdio. Warm, the
// MCP client, its tools and the agent are built once and invoked per task.
import { MultiServerMCPClient } from '@langchain/mcp-adapters';
import { ChatOpenAI } from '@langchain/openai';
import { createAgent } from 'langchain';
import { serveContender, serverEnv } from '../src/harness/contender.mjs';

await serveContender(async (spec) => {
  const env = serverEnv(spec);
  const client = new MultiServerMCPClient({
    mcpServers: Object.fromEntries(
      spec.servers.map((server) => [
        server.name,
        {
          transport: 'stdio',
          command: server.command,
          args: server.args,
          cwd: spec.workspace,
          env,
          stderr: 'inherit',
        },
      ]),
    ),
    prefixToolNameWithServerName: false,
    throwOnLoadError: true,
  });
  const tools = await client.getTools();
  const agent = createAgent({
    model: new ChatOpenAI({
      model: spec.model,
      apiKey: 'bench',
      maxRetries: 0,
      configuration: { baseURL: spec.baseURL },
    }),
    tools,
    systemPrompt: spec.system,
  });
  return {
    async run() {
      const result = await agent.invoke(
        { messages: [{ role: 'user', content: spec.instructions }] },
        { recursionLimit: 4 * spec.maxTurns },
      );
      const last = result.messages.at(-1);
      if (last?.content !== 'done') throw new Error(`the agent ended with ${JSON.stringify(last?.content)}`);
      return {};
    },
    async stop() {
      await client.close();
    },
  };
});
