// A long task in a bounded context: 60 steps of a coding agent reading 8 KB files through Keel's
// filesystem server, with a 32k window, where step 55 needs a value only step 3's result holds —
// so under compaction the agent must `recall` it. Keel with compaction (bytes/4 and the denser
// bytes/3 estimate) against the same script without a window (today's behaviour), on a scripted
// chat server that refuses requests over its window as OpenAI's API does and reports cached tokens
// for a prefix it has seen. Also: task-store bytes per task with requests as references against the
// same requests stored whole, and a replay of the compacted run.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import { createSqliteTaskStore, loadConfig, parseTaskFile, replayTask, runTask } from '@keel/supervisor';
import { serverBin } from '../harness/bench.mjs';
import { ensurePeers, peersDir } from '../harness/peers.mjs';
import { markdown } from '../harness/report.mjs';

const window = 32_768;
const reads = 54;
const fileBytes = 8192;
const magic = 'MAGIC_VALUE = 7319';
// An OpenAI-like price: cached input at half the input rate.
const price = { inputPerMTok: 2.5, cachedInputPerMTok: 1.25, outputPerMTok: 10 };

const git = (dir, ...args) =>
  execFileSync('git', args, {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1' },
  });

/** A git repository of 60 files of 8 KB; the third holds the value. */
function workspace(dir) {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 60; i++) {
    const head = i === 2 ? `// ${magic}\n` : `// module ${i}\n`;
    const body = `export const line${i} = 'a line of module ${i}';\n`;
    writeFileSync(
      path.join(dir, `m${String(i).padStart(2, '0')}.js`),
      (head + body.repeat(fileBytes / body.length)).slice(0, fileBytes),
    );
  }
  git(dir, 'init', '-q', '-b', 'main');
  for (const [key, value] of [
    ['gc.auto', '0'],
    ['commit.gpgsign', 'false'],
    ['user.name', 'Keel Bench'],
    ['user.email', 'bench@keel.invalid'],
  ])
    git(dir, 'config', key, value);
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'start');
}

const description = 'read the modules; write the value step 3 showed into ANSWER.md';

/** Usage summed over the requests the server answered (a refused request is not billed). */
function usageOf(requests) {
  const usage = requests.filter((r) => r.response?.status === 200).map((r) => r.response.body.usage);
  const input = usage.reduce((sum, u) => sum + u.prompt_tokens, 0);
  const cached = usage.reduce((sum, u) => sum + (u.prompt_tokens_details?.cached_tokens ?? 0), 0);
  const output = usage.reduce((sum, u) => sum + u.completion_tokens, 0);
  return {
    answered: usage.length,
    input,
    cached,
    output,
    cachedShare: input === 0 ? 0 : cached / input,
    // The price Keel settles with, applied to the peers' reported usage.
    costUsd:
      ((input - cached) * price.inputPerMTok +
        cached * price.cachedInputPerMTok +
        output * price.outputPerMTok) /
      1e6,
  };
}

/** One 8 KB read_file result as the harness sends it back (request 2's last message, in bytes). */
const readBytes = (requests) =>
  requests.length < 2 ? null : Buffer.byteLength(JSON.stringify(requests[1].body.messages.at(-1)));

/** The largest request as the server's window counts it (bytes/4 + max_tokens). */
const largestRequest = (requests) =>
  Math.max(
    ...requests.map(
      (r) => Math.ceil(Buffer.byteLength(JSON.stringify(r.body)) / 4) + (r.body.max_tokens ?? 0),
    ),
  );

const readme = fileURLToPath(new URL('../../README.md', import.meta.url));
const begin = '<!-- context:begin (pnpm bench context rewrites this part) -->';
const end = '<!-- context:end -->';

/** Rewrites the README's generated part of the context section with this run's figures. */
function renderReadme({ keel, peers: peerRuns, versions }) {
  const pct = (share) => `${(share * 100).toFixed(1)}%`;
  const header = [
    'run',
    'outcome',
    'requests answered',
    'input tokens',
    'cached',
    'cost (USD)',
    'tools',
    'first request (tokens)',
    'largest request (tokens)',
    'one 8 KB read as sent (bytes)',
    'ANSWER.md',
  ];
  const figures = (r) => [
    r.answered,
    r.input,
    pct(r.cachedShare),
    r.costUsd.toFixed(4),
    r.tools,
    r.firstRequest,
    r.maxRequest,
    r.readBytes,
    r.answer ?? '—',
  ];
  const keelRows = keel.map((r) => [
    `Keel, ${r.name}`,
    r.status === 'succeeded'
      ? `succeeded, ${r.recalls} recall, cuts at steps ${r.cuts.join(', ') || 'none'}`
      : `${r.status}: ${r.outcome}`,
    ...figures(r),
  ]);
  const peerRows = peerRuns.map((r) => [`${r.name}, defaults`, r.outcome, ...figures(r)]);
  const pinned = [
    '@openai/agents',
    'openai',
    'langchain',
    '@langchain/langgraph',
    '@langchain/openai',
    '@langchain/mcp-adapters',
  ]
    .filter((name) => versions[name] !== undefined)
    .map((name) => `${name} ${versions[name]}`)
    .join(', ');
  const meta = `Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}; peers: ${pinned}. Cost at $2.50 input / $1.25 cached / $10 output per million tokens (the peers' from the usage the server reported). "No window (as before)" runs against a server without a window; every other row against the 32k one.`;
  const text = readFileSync(readme, 'utf8');
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`test/bench/README.md lacks the markers ${begin} … ${end}`);
  writeFileSync(
    readme,
    `${text.slice(0, from + begin.length)}\n\n${meta}\n\n${markdown(header, [...keelRows, ...peerRows])}\n\n${text.slice(to)}`,
  );
}

const textOf = (content) => (typeof content === 'string' ? content : JSON.stringify(content ?? ''));

/**
 * The model's side: read m00..m53 (steps 1-54); at step 55 write the value into ANSWER.md — from
 * the history if it is still there, else recall step 3's result first; read three more; hand in
 * (Keel: its `submit_change` tool; a peer: the text answer `done`, which ends its run).
 */
const script =
  (finish) =>
  ({ body, index }) => {
    const messages = body.messages;
    const tools = messages.filter((m) => m.role === 'tool');
    if (index < reads)
      return {
        toolCalls: [{ name: 'read_file', arguments: { path: `m${String(index).padStart(2, '0')}.js` } }],
      };
    const written = messages.some(
      (m) => m.role === 'assistant' && (m.tool_calls ?? []).some((c) => c.function.name === 'write_file'),
    );
    if (!written) {
      const seen = tools.find((m) => textOf(m.content).includes(magic));
      if (seen !== undefined)
        return {
          toolCalls: [
            { name: 'write_file', arguments: { path: 'ANSWER.md', content: `${magic.split(' = ')[1]}\n` } },
          ],
        };
      const stub = tools.find((m) => m.tool_call_id === 'call_2_0');
      if (stub !== undefined && textOf(stub.content).startsWith('[elided'))
        return { toolCalls: [{ name: 'recall', arguments: { ref: 'call_2_0' } }] };
      return { text: 'the value from step 3 is gone' };
    }
    const wrote = messages.findIndex(
      (m) => m.role === 'assistant' && (m.tool_calls ?? []).some((c) => c.function.name === 'write_file'),
    );
    const since = messages.slice(wrote + 1).filter((m) => m.role === 'assistant').length;
    if (since < 4)
      return {
        toolCalls: [
          { name: 'read_file', arguments: { path: `m${String(reads + since).padStart(2, '0')}.js` } },
        ],
      };
    if (finish === 'text') return { text: 'done' };
    return {
      toolCalls: [
        {
          name: 'submit_change',
          arguments: { version: 'change.v1', summary: 'wrote the value', files: [], commit: null },
        },
      ],
    };
  };

/** Bytes a task takes in the store: every column of its rows, and the message bodies it refers to. */
function storeBytes(file, taskId, wholeRequests) {
  const db = new Database(file, { readonly: true });
  try {
    const one = (sql) => Number(Object.values(db.prepare(sql).get(taskId))[0] ?? 0);
    const models = one(
      `SELECT sum(coalesce(length(request),0) + coalesce(length(raw),0) + coalesce(length(reply),0) + length(agent) + length(provider)
         + length(requested_model) + coalesce(length(response_model),0) + length(system_sha256) + length(started_at) + coalesce(length(error),0) + 80)
       FROM model_calls WHERE task_id = ?`,
    );
    const requests = one('SELECT sum(coalesce(length(request),0)) FROM model_calls WHERE task_id = ?');
    const bodies = one('SELECT sum(length(body) + 70) FROM message_blobs WHERE task_id = ?');
    const tools = one(
      `SELECT sum(coalesce(length(arguments),0) + coalesce(length(result),0) + coalesce(length(effect),0) + length(tool) + length(server) + 120)
       FROM tool_calls WHERE task_id = ?`,
    );
    const events = one('SELECT sum(length(data) + length(type) + 200) FROM events WHERE task_id = ?');
    const task = one(
      'SELECT sum(length(spec) + coalesce(length(starting_state),0) + coalesce(length(run),0) + 200) FROM tasks WHERE id = ?',
    );
    const after = models + bodies + tools + events + task;
    // The same task with every request stored whole, as the store kept it before.
    const before = after - requests - bodies + wholeRequests;
    return { before, after };
  } finally {
    db.close();
  }
}

/** Runs a child to its end; resolves with its exit code and what it wrote. */
function runChild(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output }));
  });
}

const peers = [
  { id: 'agents', label: 'OpenAI Agents JS', entry: path.join(peersDir, 'agents.mjs') },
  { id: 'langgraph', label: 'LangGraph.js', entry: path.join(peersDir, 'langgraph.mjs') },
];
const peerSystem =
  'You are a coding agent working in a repository through your tools. Do the task, then answer "done".';
const peerServers = [
  { name: 'filesystem', bin: serverBin('@keel/server-filesystem', 'keel-filesystem') },
  { name: 'git', bin: serverBin('@keel/server-git', 'keel-git') },
];

/**
 * Where a peer's conversation left the script: request k (k >= 1, up to the write) must end with
 * the result of read_file m(k-1), under the id the server gave that call, holding that file.
 */
function offScript(requests) {
  const problems = [];
  for (let k = 1; k < Math.min(requests.length, reads + 1); k++) {
    const last = requests[k].body.messages.at(-1);
    const want = k - 1 === 2 ? magic : `// module ${k - 1}\n`;
    const text = textOf(last?.content);
    if (
      last?.role !== 'tool' ||
      last.tool_call_id !== `call_${k - 1}_0` ||
      !(text.includes(want) || text.includes(JSON.stringify(want).slice(1, -1)))
    )
      problems.push(
        `request ${k} does not end with read_file m${String(k - 1).padStart(2, '0')}.js's result`,
      );
  }
  return problems;
}

/**
 * A peer with its defaults on the same script, the same servers over stdio (Keel's filesystem and
 * git bins, every tool they list) and the same window-enforcing server, run to its end as a
 * process (the harness bench's cold mode).
 */
async function runPeer({ workDir, peer, log }) {
  const dir = path.join(workDir, peer.id);
  const ws = path.join(dir, 'ws');
  workspace(ws);
  const server = await startScriptedChatServer({
    script: script('text'),
    promptCache: true,
    contextWindow: window,
  });
  try {
    const spec = {
      mode: 'cold',
      baseURL: server.url,
      model: 'bench-model',
      workspace: ws,
      servers: peerServers.map((s) => ({
        name: s.name,
        command: process.execPath,
        args: [s.bin, '--root', '.', '--log-level', 'error'],
      })),
      serverEnv: { KEEL_STATE_DIR: path.join(dir, 'servers') },
      instructions: description,
      system: peerSystem,
      maxTurns: 80,
    };
    const env = { ...process.env, KEEL_BENCH_SPEC: JSON.stringify(spec) };
    delete env['KEEL_STATE_DIR'];
    const exit = await runChild(process.execPath, [peer.entry], { cwd: dir, env });
    const requests = server.requests;
    const usage = usageOf(requests);
    const refusedAt = requests.findIndex((r) => r.response?.status === 400);
    const refusal = refusedAt < 0 ? undefined : requests[refusedAt].response.body.error;
    const tools = requests[0]?.body.tools?.length ?? 0;
    const firstRequest = requests.length === 0 ? 0 : largestRequest([requests[0]]);
    let answer = null;
    try {
      answer = readFileSync(path.join(ws, 'ANSWER.md'), 'utf8').trim();
    } catch {}
    const thrown = exit.output
      .split('\n')
      .find((line) => /^\s*(Uncaught )?[A-Za-z]*Error( \[\w+\])?: /.test(line))
      ?.trim()
      .slice(0, 240);
    const outcome =
      exit.code === 0
        ? `ended with "done" after ${requests.length} requests`
        : refusedAt >= 0
          ? `refused by the provider at step ${refusedAt + 1} (${largestRequest([requests[refusedAt]])} tokens: ${refusal?.code}), the peer exited ${exit.code ?? exit.signal} (${thrown ?? 'no error line'})`
          : `exited ${exit.code ?? exit.signal} after ${requests.length} requests (${thrown ?? exit.output.slice(-300)})`;
    const result = {
      name: peer.label,
      readBytes: readBytes(requests),
      ...usage,
      requests: requests.length,
      refusedAt: refusedAt < 0 ? null : refusedAt + 1,
      tools,
      firstRequest,
      maxRequest: largestRequest(requests),
      answer,
      outcome,
      problems: offScript(requests),
    };
    log(
      `${peer.label}: ${outcome}; ${usage.answered} requests answered, input ${usage.input} tokens (${(usage.cachedShare * 100).toFixed(1)}% cached), $${usage.costUsd.toFixed(4)}, ${tools} tools, first request ${firstRequest} tokens, one read sent as ${result.readBytes} B, answer ${answer}${result.problems.length > 0 ? `; OFF SCRIPT: ${result.problems.join('; ')}` : ''}`,
    );
    return result;
  } finally {
    await server.close();
  }
}

async function runOne({ workDir, name, contextWindow, bytesPerToken, serverWindow, log }) {
  const dir = path.join(workDir, name);
  const ws = path.join(dir, 'ws');
  workspace(ws);
  const server = await startScriptedChatServer({
    script: script('keel'),
    promptCache: true,
    ...(serverWindow === undefined ? {} : { contextWindow: serverWindow }),
  });
  try {
    const model = {
      provider: 'openai-compatible',
      model: 'bench-model',
      baseURL: server.url,
      ...(contextWindow === undefined ? {} : { contextWindow }),
      ...(bytesPerToken === undefined ? {} : { bytesPerToken }),
    };
    const agent = { model: 'bench', tools: {} };
    const config = {
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: {
        filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
        git: { builtin: 'git', args: ['--root', '.'] },
      },
      models: { bench: model },
      prices: { 'bench-model': price },
      agents: {
        planning: agent,
        coding: { ...agent, tools: { filesystem: ['read_file', 'write_file', 'list_directory'] } },
        review: agent,
      },
      loops: { repeat: 3, pingPong: 3, noProgressSteps: 1000, onLoop: 'stop' },
      limits: { steps: 80, tokens: 50_000_000, costUsd: 100, toolCalls: 200 },
    };
    writeFileSync(path.join(dir, 'keel.config.json'), JSON.stringify(config));
    const loaded = loadConfig(path.join(dir, 'keel.config.json'));
    const store = createSqliteTaskStore(loaded.stateDir);
    try {
      const task = parseTaskFile(
        {
          type: 'bench',
          title: 'context',
          description,
          mode: 'single',
          tests: null,
          deploy: null,
        },
        'bench',
      );
      const { run } = await runTask({ loaded, store, env: {}, task });
      const calls = await store.listModelCalls(run.id);
      const ok = server.requests.filter((r) => r.response?.status === 200);
      const usage = ok.map((r) => r.response.body.usage);
      const input = usage.reduce((sum, u) => sum + u.prompt_tokens, 0);
      const cached = usage.reduce((sum, u) => sum + (u.prompt_tokens_details?.cached_tokens ?? 0), 0);
      const maxRequest = Math.max(
        ...server.requests.map(
          (r) => Math.ceil(Buffer.byteLength(JSON.stringify(r.body)) / 4) + (r.body.max_tokens ?? 0),
        ),
      );
      const recalls = (await store.listToolCalls(run.id)).filter((t) => t.tool === 'recall').length;
      let answer = null;
      try {
        answer = readFileSync(path.join(ws, 'ANSWER.md'), 'utf8').trim();
      } catch {}
      const whole = calls.reduce(
        (sum, c) => sum + (c.request === null ? 0 : Buffer.byteLength(JSON.stringify(c.request))),
        0,
      );
      await store.close();
      const bytes = storeBytes(path.join(loaded.stateDir, 'tasks.db'), run.id, whole);
      const result = {
        name,
        status: run.status,
        outcome: run.outcome.message,
        steps: run.steps,
        refused: server.requests.filter((r) => r.response?.status === 400).length,
        answered: ok.length,
        readBytes: readBytes(server.requests),
        tools: server.requests[0]?.body.tools?.length ?? 0,
        firstRequest: server.requests.length === 0 ? 0 : largestRequest([server.requests[0]]),
        pricedHere: usageOf(server.requests).costUsd,
        input,
        cached,
        cachedShare: input === 0 ? 0 : cached / input,
        output: usage.reduce((sum, u) => sum + u.completion_tokens, 0),
        costUsd: run.costUsd,
        maxRequest,
        recalls,
        answer,
        cuts: calls.filter((c) => (c.request?.context?.cut ?? []).length > 0).map((c) => c.step),
        bytes,
        loaded,
        taskId: run.id,
      };
      log(
        `${name}: ${result.status} (${result.outcome}) in ${result.steps} steps (${result.refused} refused), input ${input} tokens (${(result.cachedShare * 100).toFixed(1)}% cached), $${result.costUsd.toFixed(4)}, (priced here from the server's usage: $${result.pricedHere.toFixed(4)}), largest request ${maxRequest} tokens, one read sent as ${result.readBytes} B, recalls ${recalls}, answer ${answer}, cuts at steps ${result.cuts.join(',')}; store ${bytes.after} B (whole requests: ${bytes.before} B)`,
      );
      return result;
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
  } finally {
    await server.close();
  }
}

export async function run({ log, workDir }) {
  const compacted = await runOne({
    workDir,
    name: 'compaction bytes/4',
    contextWindow: window,
    serverWindow: window,
    log,
  });
  const dense = await runOne({
    workDir,
    name: 'compaction bytes/3',
    contextWindow: window,
    bytesPerToken: 3,
    serverWindow: window,
    log,
  });
  const baseline = await runOne({ workDir, name: 'no window (as before)', log });
  const refused = await runOne({ workDir, name: 'no window, 32k server', serverWindow: window, log });
  const versions = ensurePeers(log);
  const peerRuns = [];
  for (const peer of peers) peerRuns.push(await runPeer({ workDir, peer, log }));
  const store = createSqliteTaskStore(compacted.loaded.stateDir);
  let replay;
  try {
    replay = await replayTask({ store, taskId: compacted.taskId, loaded: compacted.loaded, env: {} });
  } finally {
    await store.close();
  }
  log(
    `replay of the compacted run: ${replay.identical ? 'identical' : `DIVERGED: ${replay.divergence?.message}`}`,
  );
  renderReadme({ keel: [compacted, dense, baseline, refused], peers: peerRuns, versions });
  const ok = (r) => r.status === 'succeeded' && r.answer === '7319' && r.maxRequest <= window;
  const rows = [
    {
      name: 'input tokens, 60 steps (compaction / none)',
      keel: compacted.input,
      reference: baseline.input,
      unit: 'tokens',
      ratio: compacted.input / baseline.input,
      target: 'every request inside 32k; succeeds',
      note: `compaction: ${compacted.status}, ${compacted.steps} steps, largest request ${compacted.maxRequest} of ${window}, ${compacted.recalls} recall, answer ${compacted.answer}, cuts at steps ${compacted.cuts.join(',')}; no window: ${baseline.status}, largest request ${baseline.maxRequest}; no window on a 32k server: ${refused.status} (${refused.outcome}) after ${refused.steps} steps`,
    },
    {
      name: 'input tokens, bytes/3 estimate (compaction / none)',
      keel: dense.input,
      reference: baseline.input,
      unit: 'tokens',
      ratio: dense.input / baseline.input,
      target: 'succeeds',
      note: `bytes/3: ${dense.status}, largest request ${dense.maxRequest}, ${dense.recalls} recall, answer ${dense.answer}, cuts at steps ${dense.cuts.join(',')}, cached ${(dense.cachedShare * 100).toFixed(1)}%, $${dense.costUsd.toFixed(4)}`,
    },
    {
      name: 'cost USD at $2.50/$1.25 cached/$10 (compaction / none)',
      keel: compacted.costUsd,
      reference: baseline.costUsd,
      unit: 'USD',
      ratio: compacted.costUsd / baseline.costUsd,
      target: 'lower',
    },
    {
      name: 'cached share of input (compaction / none)',
      keel: compacted.cachedShare,
      reference: baseline.cachedShare,
      unit: 'share',
      ratio: compacted.cachedShare / baseline.cachedShare,
      target: 'report',
    },
    ...peerRuns.flatMap((peer) => [
      {
        name: `input tokens: Keel with compaction / ${peer.name} (defaults, 32k server)`,
        keel: compacted.input,
        reference: peer.input,
        unit: 'tokens',
        ratio: compacted.input / peer.input,
        target: 'report',
        note: `${peer.name}: ${peer.outcome}; ${peer.answered} requests answered, ${peer.input} input tokens, ${(peer.cachedShare * 100).toFixed(1)}% cached, $${peer.costUsd.toFixed(4)} at the same prices, ${peer.tools} tools (first request ${peer.firstRequest} tokens), answer ${peer.answer}; Keel ran all ${compacted.steps} steps for $${compacted.costUsd.toFixed(4)}, so the ratio compares a finished task with one that stopped; Keel without a window on the same server stopped too, after ${refused.answered} answered requests and ${refused.input} input tokens ($${refused.costUsd.toFixed(4)})`,
      },
    ]),
    {
      // Today's store on that run: no compaction, every request stored whole.
      name: 'task-store bytes per task (now / as before)',
      keel: compacted.bytes.after,
      reference: baseline.bytes.before,
      unit: 'bytes',
      ratio: compacted.bytes.after / baseline.bytes.before,
      target: '<= 0.2',
      note: `references alone (no compaction): ${baseline.bytes.after} B against ${baseline.bytes.before} B whole (${(baseline.bytes.after / baseline.bytes.before).toFixed(3)}); the compacted run with its requests stored whole would take ${compacted.bytes.before} B (references: ${(compacted.bytes.after / compacted.bytes.before).toFixed(3)}); "whole" leaves out the structured results requests used to carry too, so "before" is understated`,
    },
    {
      name: 'replay of the compacted run identical',
      keel: replay.identical ? 1 : 0,
      reference: 1,
      unit: 'bool',
      ratio: replay.identical ? 1 : 0,
      target: '1',
    },
  ];
  const within = compacted.bytes.after / baseline.bytes.before <= 0.2;
  const offScript = peerRuns.filter((p) => p.problems.length > 0);
  if (!ok(compacted) || !ok(dense) || !replay.identical || !within || offScript.length > 0)
    throw new Error(
      `the context bench failed its own checks: ${JSON.stringify({ rows, offScript: offScript.map((p) => [p.name, p.problems]) }, null, 2)}`,
    );
  return rows;
}
