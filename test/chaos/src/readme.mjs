// The README's table, rendered from a report: the test compares the two, so the README never
// states figures the committed report does not hold.

export const startMarker =
  '<!-- chaos-report:start (generated from report.json by `pnpm chaos`; do not edit) -->';
export const endMarker = '<!-- chaos-report:end -->';

const tierNames = {
  A: 'A: a server killed mid-call, restarted, same-key retry',
  B: 'B: `keel run` killed -9, then `keel resume`',
  C: 'C: a worker (concurrency 2) killed -9, backends terminated (PostgreSQL); the console killed while it resumes a task',
  D: 'D: PostgreSQL: a worker stalled past its heartbeat, taken over',
};

export function renderTable(report) {
  const lines = [];
  lines.push(
    `Seed ${report.seed}, ${report.lanes} lane(s), wall time ${formatSeconds(report.wallSeconds)}: ` +
      `**${report.totals.deaths} deaths, ${report.totals.violations} violation(s)**.`,
  );
  // The goals beside the total: deaths at the supervisor's level (keel runs, workers, the
  // console) and how often the least-hit named crash point was hit.
  const supervisor = report.rows.filter((r) => r.tier !== 'A').reduce((s, r) => s + r.deaths, 0);
  const named = report.rows.filter((r) => !r.point.startsWith('random') && r.tier !== 'C' && r.tier !== 'D');
  const fewest = named.length === 0 ? 0 : Math.min(...named.map((r) => r.deaths));
  lines.push('');
  lines.push(
    `\`${report.command}\`. At the supervisor level (tiers B, C, D): ${supervisor} deaths; ` +
      `the least-hit named crash point: ${fewest} deaths.`,
  );
  lines.push('');
  lines.push('| tier | deaths | deaths per lane-minute |');
  lines.push('| ---- | -----: | ---------------------: |');
  for (const [tier, t] of Object.entries(report.tiers))
    lines.push(`| ${tierNames[tier] ?? tier} | ${t.deaths} | ${t.deathsPerLaneMinute.toFixed(1)} |`);
  lines.push('');
  lines.push('| tier | target | point | deaths | violations |');
  lines.push('| ---- | ------ | ----- | -----: | ---------: |');
  for (const row of report.rows)
    lines.push(`| ${row.tier} | ${row.target} | \`${row.point}\` | ${row.deaths} | ${row.violations} |`);
  if (report.violationKinds.length > 0) {
    lines.push('');
    lines.push(
      'Violations, by kind (the first occurrence of each, to run again with its seed, lane and round):',
    );
    lines.push('');
    for (const v of report.violationKinds)
      lines.push(
        `- ${v.count}× tier ${v.tier} ${v.target} \`${v.point}\`: ${v.what.replaceAll('|', '\\|')} (first: lane ${v.first.lane}, round ${v.first.round})`,
      );
  }
  return lines.join('\n');
}

function formatSeconds(seconds) {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return m > 0 ? `${m} min ${s} s` : `${s} s`;
}

/** `readme` with the block between the markers replaced by the table of `report`. */
export function withTable(readme, report) {
  const start = readme.indexOf(startMarker);
  const end = readme.indexOf(endMarker);
  if (start < 0 || end < start) throw new Error('README has no chaos-report markers');
  return `${readme.slice(0, start + startMarker.length)}\n\n${renderTable(report)}\n\n${readme.slice(end)}`;
}
