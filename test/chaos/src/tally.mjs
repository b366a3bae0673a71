// What a campaign counts: deaths per tier, target and point, and every violation with what it takes
// to repeat it (seed, lane, round).

export function createTally() {
  const deaths = new Map();
  const violations = [];
  const key = (tier, target, point) => `${tier}\t${target}\t${point}`;
  return {
    death(tier, target, point) {
      const k = key(tier, target, point);
      const row = deaths.get(k) ?? { tier, target, point, deaths: 0, violations: 0 };
      row.deaths++;
      deaths.set(k, row);
    },
    violation(tier, target, point, detail) {
      const k = key(tier, target, point);
      const row = deaths.get(k) ?? { tier, target, point, deaths: 0, violations: 0 };
      row.violations++;
      deaths.set(k, row);
      violations.push({ tier, target, point, ...detail });
    },
    rows: () =>
      [...deaths.values()].sort(
        (a, b) =>
          a.tier.localeCompare(b.tier) || a.target.localeCompare(b.target) || a.point.localeCompare(b.point),
      ),
    violations: () => violations,
    total: () => [...deaths.values()].reduce((sum, row) => sum + row.deaths, 0),
  };
}
