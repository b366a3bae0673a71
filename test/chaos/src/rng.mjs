// Seeded randomness: a campaign run again with the same --seed makes the same choices.

/** mulberry32: small, fast, good enough to spread kill moments; returns floats in [0, 1). */
export function createRandom(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** An integer in [lo, hi). */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo)),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

/**
 * A seeded deck over `items`: each pass deals every item once, in an order shuffled afresh, so a
 * campaign hits each crash point about as often as another (a pure random pick leaves some short).
 * With `groupOf`, a pass deals the items of one group together (the groups, and the items within
 * each, in shuffled order): tier A deals the rounds of one server bin in a row, so each round's retry
 * server can stay up as the next round's victim.
 */
export function createDeck(random, items, groupOf = () => '') {
  const shuffle = (list) => {
    for (let i = list.length - 1; i > 0; i--) {
      const j = random.int(0, i + 1);
      [list[i], list[j]] = [list[j], list[i]];
    }
    return list;
  };
  const groups = new Map();
  for (const item of items) groups.set(groupOf(item), [...(groups.get(groupOf(item)) ?? []), item]);
  let hand = [];
  return () => {
    if (hand.length === 0)
      hand = shuffle([...groups.values()].map((group) => shuffle([...group])))
        .flat()
        .reverse();
    return hand.pop();
  };
}
