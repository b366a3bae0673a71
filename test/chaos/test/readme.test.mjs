import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';
import { endMarker, startMarker, withTable } from '../src/readme.mjs';

const here = new URL('..', import.meta.url).pathname;
const readmeFile = path.join(here, 'README.md');

describe('the README table', () => {
  it('is the committed report.json, rendered', async () => {
    const report = JSON.parse(readFileSync(path.join(here, 'report.json'), 'utf8'));
    const readme = readFileSync(readmeFile, 'utf8');
    const rendered = await prettier.format(withTable(readme, report), {
      ...(await prettier.resolveConfig(readmeFile)),
      filepath: readmeFile,
    });
    expect(readme).toBe(rendered);
    // And the block is really there, with the totals in it.
    const block = readme.slice(readme.indexOf(startMarker), readme.indexOf(endMarker));
    expect(block).toContain(`**${report.totals.deaths} deaths, ${report.totals.violations} violation(s)**`);
  });

  it('counts every death of the report once: the per-point rows sum to the tiers and the total', () => {
    const report = JSON.parse(readFileSync(path.join(here, 'report.json'), 'utf8'));
    const sum = (rows) => rows.reduce((s, r) => s + r.deaths, 0);
    expect(sum(report.rows)).toBe(report.totals.deaths);
    for (const [tier, t] of Object.entries(report.tiers))
      expect(sum(report.rows.filter((r) => r.tier === tier))).toBe(t.deaths);
    expect(report.rows.reduce((s, r) => s + r.violations, 0)).toBe(report.totals.violations);
  });
});
