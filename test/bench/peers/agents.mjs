// OpenAI Agents JS as a contender: its chat-completions model on an OpenAI client pointed at the
// scripted server, the three Keel servers through MCPServerStdio, tracing off (its default exporter
// posts to a hosted service). Warm, the servers stay connected and their tool lists are cached.
import { Agent, MCPServerStdio, OpenAIChatCompletionsModel, run, setTracingDisabled } from '@openai/agents';
import OpenAI from 'openai';
import { serveContender, serverEnv } from '../src/harness/contender.mjs';

setTracingDisabled(true);

await serveContender(async (spec) => {
  const env = serverEnv(spec);
  const servers = spec.servers.map(
    (server) =>
      new MCPServerStdio({
        name: server.name,
        command: server.command,
        args: server.args,
        cwd: spec.workspace,
        env,
        cacheToolsList: true,
      }),
  );
  for (const server of servers) await server.connect();
  const client = new OpenAI({ baseURL: spec.baseURL, apiKey: 'bench', maxRetries: 0 });
  const agent = new Agent({
    name: 'coder',
    instructions: spec.system,
    model: new OpenAIChatCompletionsModel(client, spec.model),
    mcpServers: servers,
  });
  return {
    async run() {
      const result = await run(agent, spec.instructions, { maxTurns: spec.maxTurns });
      if (result.finalOutput !== 'done')
        throw new Error(`the agent ended with ${JSON.stringify(result.finalOutput)}`);
      return {};
    },
    async stop() {
      for (const server of servers) await server.close();
    },
  };
});
