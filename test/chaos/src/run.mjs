#!/usr/bin/env node
// `pnpm chaos [--seed N] [--minutes M] [--deaths N] [--lanes L] [--tiers A,B] [--cd-point P]… [--sample]`
// Lanes run side by side, each with its own world and its own seeded choices; each round is one
// death (tier A) or one task killed a few times and resumed (tier B), checked against the
// invariants before the next. The full campaign writes report.json and the README table; a sample
// (--sample: 250 deaths, ≤ 9 minutes) writes its report to a temp file and exits 1 on any
// violation.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import * as prettier from 'prettier';
import { withTable } from './readme.mjs';
import { createDeck, createRandom } from './rng.mjs';
import { createTally } from './tally.mjs';
import { binOf, createLane, runRoundA, tierAPoints, verifyAudit } from './tierA.mjs';
import { createTaskWorld, runTaskB, script, tierBPoints } from './tierB.mjs';
import { runRoundCD, tierCDFaults } from './tierCD.mjs';
import { consoleFault, runRoundConsole } from './tierConsole.mjs';

const here = new URL('..', import.meta.url).pathname;
const usage = `usage: pnpm chaos [options]
  --seed N          seeds every lane's choices (default 1); the same seed replays the same choices
  --minutes M       wall-time budget (default 40; 9 with --sample)
  --deaths N        stop after N deaths (default: no cap; 250 with --sample)
  --lanes L         lanes side by side, each with its own world (default 2)
  --tiers A,B,C,D   which tiers run (default all; C and D need PostgreSQL)
  --b-share F       share of rounds in tier B, 0 to 1 (default 0.3)
  --cd-share F      share of rounds in tiers C and D, 0 to 1 (default 0.05)
  --cd-point P      only the C/D faults whose point names P (repeatable)
  --pg URL          PostgreSQL for tiers C and D (default KEEL_TEST_DATABASE_URL)
  --report FILE     where the report goes (default report.json here; a temp file with --sample)
  --sample          250 deaths in at most 9 minutes; exits 1 on any violation
A full run (no --sample, no --report) rewrites report.json and the README table.
`;
const fail = (message, hint) => {
  process.stderr.write(`chaos: ${message}\nhint: ${hint}\n`);
  process.exit(2);
};
let parsed;
try {
  parsed = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      minutes: { type: 'string' },
      deaths: { type: 'string' },
      lanes: { type: 'string', default: '2' },
      tiers: { type: 'string', default: 'A,B,C,D' },
      sample: { type: 'boolean', default: false },
      report: { type: 'string' },
      'b-share': { type: 'string', default: '0.3' },
      'cd-share': { type: 'string', default: '0.05' },
      pg: { type: 'string' },
      'cd-point': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (error) {
  fail(error instanceof Error ? error.message : String(error), 'pnpm chaos --help lists the options');
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const int = (name, value) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} '${value}' is not a whole number`, `e.g. --${name} 3`);
  return n;
};
const seed = int('seed', values.seed);
const lanes = Math.max(1, int('lanes', values.lanes));
const tiers = values.tiers.split(',').map((t) => t.trim().toUpperCase());
for (const t of tiers)
  if (!['A', 'B', 'C', 'D'].includes(t)) fail(`unknown tier '${t}'`, 'tiers: A, B, C, D');
const pgUrl = values.pg ?? process.env['KEEL_TEST_DATABASE_URL'];
if (pgUrl === undefined && (tiers.includes('C') || tiers.includes('D'))) {
  process.stderr.write('chaos: no PostgreSQL (--pg URL or KEEL_TEST_DATABASE_URL): tiers C and D left out\n');
  tiers.splice(0, tiers.length, ...tiers.filter((t) => t !== 'C' && t !== 'D'));
}
// `--cd-point pg_terminate_backend` (repeatable): only the C/D faults whose point names it, to check one
// fault many times over.
const cdPoints = values['cd-point'] ?? [];
const cdFaults = [...tierCDFaults, consoleFault].filter(
  (f) => tiers.includes(f.tier) && (cdPoints.length === 0 || cdPoints.some((p) => f.point.includes(p))),
);
for (const p of cdPoints)
  if (![...tierCDFaults, consoleFault].some((f) => f.point.includes(p)))
    fail(
      `no C/D fault point names '${p}'`,
      `points: ${[...tierCDFaults, consoleFault].map((f) => `'${f.point}'`).join(', ')}`,
    );
if (tiers.length === 0)
  fail('no tier left to run', 'pass --pg postgres://… (or set KEEL_TEST_DATABASE_URL) for tiers C and D');
const share = (name) => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    fail(`--${name} '${values[name]}' is not a share from 0 to 1`, `e.g. --${name} 0.2`);
  return n;
};
const minutes = values.minutes === undefined ? (values.sample ? 9 : 40) : Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0)
  fail(`--minutes '${values.minutes}' is not a positive number`, 'e.g. --minutes 30');
const target = values.deaths === undefined ? (values.sample ? 250 : Infinity) : int('deaths', values.deaths);
const bShare = share('b-share');
const cdShare = cdFaults.length === 0 ? 0 : share('cd-share');
const reportFile =
  values.report ??
  (values.sample ? path.join(os.tmpdir(), `keel-chaos-sample-${seed}.json`) : path.join(here, 'report.json'));

const pairsA = Object.entries(tierAPoints).flatMap(([server, points]) =>
  points.map((point) => [server, point]),
);
const tally = createTally();
const spent = { A: 0, B: 0, C: 0, D: 0 };
const started = Date.now();
const deadline = started + minutes * 60_000;
const root = mkdtempSync(path.join(os.tmpdir(), 'keel-chaos-'));
const chat = await startScriptedChatServer({ script });
let stopping = false;
process.on('SIGINT', () => (stopping = true));
const more = () => !stopping && Date.now() < deadline && tally.total() < target;

/** A violation, counted, and told at once (a campaign runs for an hour before its report). */
function violation(tier, target, point, detail) {
  tally.violation(tier, target, point, detail);
  process.stderr.write(
    `chaos: VIOLATION tier ${tier} ${target} ${point} (lane ${detail.lane}, round ${detail.round}): ${detail.what}\n`,
  );
}

let progressAt = 0;
function progress() {
  if (Date.now() - progressAt < 10_000) return;
  progressAt = Date.now();
  process.stderr.write(
    `chaos: ${tally.total()} deaths, ${tally.violations().length} violation(s), ${Math.round((Date.now() - started) / 1000)} s\n`,
  );
}

// Wall time spent per tier, the rounds still running included, so side-by-side lanes share it out.
const running = new Set();
const spentNow = (tier) =>
  spent[tier] + [...running].reduce((sum, r) => sum + (r.tier === tier ? Date.now() - r.t0 : 0), 0);
const abTiers = tiers.filter((t) => t === 'A' || t === 'B');
/**
 * The next round's tier, by time rather than by count (a tier B or C round takes many tier A ones):
 * C/D while they have less than `--cd-share` of the wall time spent, else B below `--b-share`,
 * else A.
 */
function chooseTier() {
  const total = tiers.reduce((sum, t) => sum + spentNow(t), 0);
  if (cdFaults.length > 0 && (abTiers.length === 0 || spentNow('C') + spentNow('D') < cdShare * total))
    return 'CD';
  if (abTiers.includes('B') && (!abTiers.includes('A') || spentNow('B') < bShare * total)) return 'B';
  return 'A';
}

async function lane(index) {
  // A stream and a deck per tier: the k-th round of a tier in a lane makes the same choices (which
  // target, which point, which moment) whatever the others took, however the tiers interleave.
  const rA = createRandom(seed * 1000 + index);
  const rB = createRandom(seed * 1000 + 100 + index);
  const rCD = createRandom(seed * 1000 + 200 + index);
  const deckA = createDeck(rA, pairsA, ([server]) => binOf(server));
  const deckCD = createDeck(rCD, cdFaults);
  const pickB = createDeck(rB, tierBPoints);
  const laneA = tiers.includes('A') ? await createLane(path.join(root, `a${index}`)) : undefined;
  const plan = () => {
    const tier = chooseTier();
    if (tier === 'A') {
      const [server, point] = deckA();
      return { tier, server, point };
    }
    if (tier === 'B') return { tier, deaths: 3 + rB.int(0, 3) };
    const fault = deckCD();
    return { tier: fault.tier, fault };
  };
  let round = 0;
  let roundsA = 0;
  let tasks = 0;
  let held; // the previous round's retry server, armed for this round (tier A)
  let planned = plan();
  while (more()) {
    round++;
    const now = planned;
    const run = { tier: now.tier, t0: Date.now() };
    running.add(run);
    if (now.fault === consoleFault) {
      const laneId = `${index}.${++tasks}`;
      const dir = path.join(root, `console${index}-${round}`);
      await runRoundConsole({
        dir,
        laneId,
        chat,
        random: rCD,
        record: (point, what) =>
          what === undefined
            ? tally.death('C', consoleFault.target, point)
            : violation('C', consoleFault.target, point, { what, lane: index, round }),
      });
      rmSync(dir, { recursive: true, force: true });
      planned = plan();
    } else if (now.tier === 'C' || now.tier === 'D') {
      const f = now.fault;
      const dir = path.join(root, `cd${index}-${round}`);
      mkdirSync(dir);
      await runRoundCD({
        dir,
        adminUrl: pgUrl,
        fault: f,
        random: rCD,
        record: (what) =>
          what === undefined
            ? tally.death(f.tier, f.target, f.point)
            : violation(f.tier, f.target, f.point, { what, lane: index, round }),
      });
      rmSync(dir, { recursive: true, force: true });
      planned = plan();
    } else if (now.tier === 'A') {
      roundsA++;
      // Chosen before the retry server starts, so it can be armed for the next round's call.
      planned = plan();
      const next =
        planned.tier === 'A' && roundsA % 25 !== 0 && more()
          ? { server: planned.server, point: planned.point, round: round + 1 }
          : undefined;
      const { server, point } = now;
      const outcome = await runRoundA({ lane: laneA, server, point, round, random: rA, victim: held, next });
      held = outcome.held;
      // A random kill that came after the answer still kills the server: the retry must replay.
      const as = point === 'random' && outcome.answered === true ? 'random-after-reply' : point;
      tally.death('A', server, as);
      if (outcome.violation !== undefined)
        violation('A', server, as, { what: outcome.violation, lane: index, round });
      // Every 25 rounds, with no server of the lane running (none is held across it).
      if (roundsA % 25 === 0) {
        const broken = await verifyAudit(laneA);
        if (broken !== undefined) violation('A', 'audit', 'verify', { what: broken, lane: index, round });
      }
    } else {
      const laneId = `${index}.${++tasks}`;
      const world = await createTaskWorld(path.join(root, `b${index}-${tasks}`), laneId, chat.url);
      await runTaskB({
        world,
        laneId,
        chat,
        random: rB,
        pickPoint: pickB,
        deaths: now.deaths,
        randomWindowMs: 4000,
        record: (point, what) =>
          what === undefined
            ? tally.death('B', 'keel run/resume', point)
            : violation('B', 'keel run/resume', point, { what, lane: index, round }),
      });
      rmSync(world.dir, { recursive: true, force: true });
      planned = plan();
    }
    running.delete(run);
    spent[now.tier] += Date.now() - run.t0;
    progress();
  }
  await held?.close();
  if (laneA !== undefined) {
    const broken = await verifyAudit(laneA);
    if (broken !== undefined) violation('A', 'audit', 'verify', { what: broken, lane: index, round });
  }
}

await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
await chat.close();
rmSync(root, { recursive: true, force: true });

const wallSeconds = (Date.now() - started) / 1000;
const rows = tally.rows();
const tierTotals = {};
for (const tier of tiers) {
  const deaths = rows.filter((r) => r.tier === tier).reduce((s, r) => s + r.deaths, 0);
  tierTotals[tier] = {
    deaths,
    laneMinutes: Math.round((spent[tier] / 60_000) * 10) / 10,
    deathsPerLaneMinute: spent[tier] === 0 ? 0 : Math.round((deaths / (spent[tier] / 60_000)) * 10) / 10,
  };
}
const kinds = new Map();
for (const v of tally.violations()) {
  // The same fault found again: one kind (numbers of rounds and steps aside).
  const what = v.what.replace(/r\d+/g, 'rN').replace(/\d+/g, 'N');
  const k = `${v.tier}\t${v.target}\t${v.point}\t${what}`;
  const kind = kinds.get(k) ?? {
    tier: v.tier,
    target: v.target,
    point: v.point,
    what: v.what,
    count: 0,
    first: { lane: v.lane, round: v.round },
  };
  kind.count++;
  kinds.set(k, kind);
}
const report = {
  command: `pnpm chaos ${process.argv.slice(2).join(' ')}`.trim(),
  seed,
  sample: values.sample,
  lanes,
  wallSeconds: Math.round(wallSeconds),
  totals: { deaths: tally.total(), violations: tally.violations().length },
  tiers: tierTotals,
  rows,
  violationKinds: [...kinds.values()],
  violations: tally.violations().slice(0, 200),
};
// Written as the repository's prettier would, so `pnpm lint` and the README test agree with it.
const pretty = async (text, filepath) =>
  prettier.format(text, { ...(await prettier.resolveConfig(filepath)), filepath });
writeFileSync(reportFile, await pretty(JSON.stringify(report, null, 2), reportFile));
if (!values.sample && values.report === undefined) {
  const readmeFile = path.join(here, 'README.md');
  writeFileSync(readmeFile, await pretty(withTable(readFileSync(readmeFile, 'utf8'), report), readmeFile));
}
process.stderr.write(
  `chaos: ${report.totals.deaths} deaths, ${report.totals.violations} violation(s) in ${report.wallSeconds} s; report: ${reportFile}\n`,
);
process.exit(report.totals.violations > 0 ? 1 : 0);
