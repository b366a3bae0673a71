import { checkContract, type ContractName } from '@keel/contracts';
import type { ModelMessage, ModelToolDefinition } from '../models/model.js';
import { contractJsonSchema, type RoleSpec } from '../agents/roles.js';
import { recallTool, recallToolName } from './context/recall.js';
import { hintMessage, type AgentRun, type TaskSession } from './session.js';
import { done, stopped, type Step } from './stop.js';

/**
 * Runs one agent invocation until it hands in its contract through its final tool: model call,
 * then each tool call through the session, results back as quoted data. A contract that does not
 * validate goes back to the model with its issues, within `contractRetries`.
 */
export async function runAgent(
  session: TaskSession,
  agent: AgentRun,
  spec: RoleSpec,
  system: string,
  input: string,
): Promise<Step<unknown>> {
  // Not awaited before the first model call: at a task's start the request goes out while the start
  // is still being recorded. The event still lands before that call's record (the session's writes
  // are in order), and a failure to write it ends the run once the call returns.
  const announced = session.event('agent_started', {
    agent: agent.role,
    invocation: agent.invocation,
  });
  announced.catch(() => undefined);
  session.progress('agent', agent.role, `invocation ${agent.invocation}`);
  const messages: ModelMessage[] = [
    { role: 'system', content: system },
    { role: 'user', content: input },
  ];
  const tools: ModelToolDefinition[] = [
    ...[...agent.scope.values()].map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: t.inputSchema,
    })),
    {
      name: spec.finalTool,
      description: spec.finalDescription,
      inputSchema: contractJsonSchema(spec.contract),
    },
  ];
  // An agent whose model has a window may see stubs in place of older results: it can recall them.
  const recalls = session.contextOf(agent) !== undefined && !agent.scope.has(recallToolName);
  if (recalls) tools.push(recallTool);
  let contractFailures = 0;
  const finish = async (result: Step<unknown>) => {
    await session.event('agent_finished', {
      agent: agent.role,
      invocation: agent.invocation,
      ...(result.ok ? { contract: spec.contract } : { stop: result.stop }),
    });
    agent.span?.end(result.ok ? undefined : result.stop.status);
    return result;
  };
  for (;;) {
    messages.push(...session.takeHints().map(hintMessage));
    const model = await session.model(agent, messages, tools);
    await announced;
    if (!model.ok) return finish(model);
    const reply = model.value;
    messages.push({
      role: 'assistant',
      content: reply.text,
      toolCalls: reply.toolCalls,
      ...(reply.reasoning === undefined ? {} : { reasoning: reply.reasoning }),
    });
    if (reply.toolCalls.length === 0) {
      messages.push({
        role: 'user',
        content: `Call one of your tools, or ${spec.finalTool} to hand in your ${spec.contract} result.`,
      });
    }
    for (const [index, call] of reply.toolCalls.entries()) {
      if (call.name === spec.finalTool) {
        const loop = session.checkLoop(call);
        if (loop !== undefined) {
          const escalation = await session.escalate(session.loopStop(loop));
          if (!escalation.ok) return finish(escalation);
        }
        const check = checkContract(spec.contract as ContractName, call.arguments);
        if (check.ok) {
          session.addContract(check.value);
          await session.event('contract_accepted', {
            agent: agent.role,
            contract: spec.contract,
            value: check.value,
          });
          return finish(done(check.value));
        }
        contractFailures++;
        await session.event('contract_rejected', {
          agent: agent.role,
          contract: spec.contract,
          code: check.code,
          issues: check.issues,
        });
        if (contractFailures > session.budget.limits.contractRetries)
          return finish(
            stopped({
              status: 'limit',
              limit: 'contract_retries',
              message: `the ${agent.role} agent handed in an invalid ${spec.contract} ${contractFailures} times: ${check.message}`,
            }),
          );
        messages.push({
          role: 'tool',
          toolCallId: call.id,
          toolName: call.name,
          isError: true,
          content: JSON.stringify({
            code: check.code,
            message: check.message,
            issues: check.issues,
            hint: `call ${spec.finalTool} again with a value that matches ${spec.contract}`,
          }),
        });
        continue;
      }
      const answer =
        recalls && call.name === recallToolName
          ? await session.recall(agent, call, index, messages)
          : await session.tool(agent, call, index);
      if (!answer.ok) return finish(answer);
      messages.push(answer.value.message);
    }
    const loop = session.loops.observeState(session.stateHash());
    if (loop !== undefined) {
      const escalation = await session.escalate(session.loopStop(loop));
      if (!escalation.ok) return finish(escalation);
    }
  }
}
