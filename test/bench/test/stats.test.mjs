// The harness table's per-round interval: the statistic it names, the same for the same data, and
// wide or narrow as the rounds are noisy or steady.
import { describe, expect, it } from 'vitest';
import { median, pairedRatio } from '../src/stats.mjs';
import { pairedCell } from '../src/harness/report.mjs';

describe('pairedRatio', () => {
  it('is the median of the per-round ratios, with an interval drawn from them', () => {
    const keel = [110, 120, 90, 100, 105];
    const peer = [100, 100, 100, 100, 100];
    const result = pairedRatio(keel, peer);
    expect(result.ratio).toBe(1.05);
    expect(result.rounds).toBe(5);
    // Every bootstrap median is one of the five ratios, so the interval's ends are too.
    expect([0.9, 1, 1.05, 1.1, 1.2]).toContain(result.low);
    expect([0.9, 1, 1.05, 1.1, 1.2]).toContain(result.high);
    expect(result.low).toBeLessThan(1);
    expect(result.high).toBeGreaterThan(1.05);
  });

  it('gives the same interval for the same data, and a wider one for noisier rounds', () => {
    const peer = Array.from({ length: 12 }, () => 100);
    const steady = Array.from({ length: 12 }, (_, i) => 100 + (i % 3));
    const noisy = Array.from({ length: 12 }, (_, i) => 100 + ((i * 37) % 41) - 20);
    expect(pairedRatio(noisy, peer)).toEqual(pairedRatio(noisy, peer));
    const width = ({ low, high }) => high - low;
    expect(width(pairedRatio(steady, peer))).toBeLessThan(0.021);
    expect(width(pairedRatio(noisy, peer))).toBeGreaterThan(0.1);
  });

  it('pairs rounds: a load burst both contenders ran through moves neither ratio', () => {
    // Round 3 ran under load: both took three times as long. Unpaired medians blur it; the paired
    // ratio is 0.9 in every round, so its interval is that one point.
    const keel = [90, 90, 270, 90, 90, 90];
    const peer = [100, 100, 300, 100, 100, 100];
    expect(pairedRatio(keel, peer)).toEqual({ ratio: 0.9, low: 0.9, high: 0.9, rounds: 6 });
    expect(median(keel) / median(peer)).toBe(0.9);
  });

  it('uses the rounds both have, and refuses none', () => {
    expect(pairedRatio([2, 4, 6], [1, 2]).rounds).toBe(2);
    expect(() => pairedRatio([], [1])).toThrow('paired ratio of nothing');
  });

  it("renders as the harness table's cell", () => {
    expect(pairedCell({ wallMs: [90, 90, 90] }, { wallMs: [100, 100, 100] })).toBe('0.90 (0.90–0.90)');
    expect(pairedCell(undefined, { wallMs: [1] })).toBe('—');
  });
});
