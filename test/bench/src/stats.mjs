/** The median of a list of numbers. */
export function median(values) {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 0 ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle];
}

/** A seeded generator of uniform numbers in [0, 1) (xorshift32): the same data always gives the same interval. */
function uniform(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

/**
 * Keel's ratio to a peer over rounds run back to back (round i of each, so a burst of load on a
 * shared machine hits both): the median of the per-round ratios, and a 95% percentile-bootstrap
 * interval of that median. An interval that contains 1 says the run cannot tell the two apart.
 */
export function pairedRatio(keel, peer, { resamples = 4000, seed = 1 } = {}) {
  const count = Math.min(keel.length, peer.length);
  if (count === 0) throw new Error('paired ratio of nothing');
  const ratios = Array.from({ length: count }, (_, i) => keel[i] / peer[i]);
  const next = uniform(seed);
  const medians = Array.from({ length: resamples }, () =>
    median(Array.from({ length: count }, () => ratios[Math.floor(next() * count)])),
  ).sort((a, b) => a - b);
  const at = (q) => medians[Math.min(resamples - 1, Math.floor(q * resamples))];
  return { ratio: median(ratios), low: at(0.025), high: at(0.975), rounds: count };
}
