// Where a contender's main-thread CPU goes, from a V8 CPU profile: self time by package, and the
// inclusive time of the contender's own functions that cost most — per step.

/** Which package a frame's script belongs to: Keel's own by package directory, others by name. */
function packageOf(url) {
  if (url === '') return '(native: JSON, regexp, builtins)';
  const keel = /\/(apps|packages|servers)\/([^/]+)\/dist\//.exec(url);
  if (keel !== null && !url.includes('node_modules')) return `keel ${keel[2]}`;
  const dependency = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dependency !== null) return dependency[1];
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('/test/bench/')) return 'bench wrappers';
  return url;
}

const round = (value) => Number(value.toFixed(3));

/** A summary of `profile` per step (`steps` = the steps its measured tasks made). */
export function summarizeProfile(profile, steps) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const selfMs = new Map();
  profile.samples.forEach((id, i) =>
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000),
  );

  const byPackage = new Map();
  const ownInclusive = new Map();
  let busy = 0;
  for (const node of profile.nodes) {
    const ms = selfMs.get(node.id) ?? 0;
    if (ms === 0) continue;
    const { functionName, url } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') continue;
    busy += ms;
    const name = functionName === '(garbage collector)' ? '(garbage collector)' : packageOf(url);
    byPackage.set(name, (byPackage.get(name) ?? 0) + ms);
    // Inclusive time of each of the contender's own functions on this sample's stack (counted once per stack).
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parents.get(id)) {
      const frame = nodes.get(id).callFrame;
      const owner = packageOf(frame.url);
      if (!owner.startsWith('keel ')) continue;
      const key = `${frame.functionName || '(anonymous)'} (${frame.url.replace(/^.*\/dist\//, '')}:${frame.lineNumber + 1})`;
      if (seen.has(key)) continue;
      seen.add(key);
      ownInclusive.set(key, (ownInclusive.get(key) ?? 0) + ms);
    }
  }
  const top = (map, count) =>
    Object.fromEntries(
      [...map]
        .sort((a, b) => b[1] - a[1])
        .slice(0, count)
        .map(([key, ms]) => [key, round(ms / steps)]),
    );
  return {
    busy: round(busy / steps),
    byPackage: top(byPackage, 20),
    keelFunctionsInclusive: top(ownInclusive, 30),
  };
}
