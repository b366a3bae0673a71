// Runs in the page (see layoutProblems in consoleBrowser.ts): plain JavaScript, handed to the
// browser as it is, so the tests' TypeScript needs no DOM types.

/**
 * What a person would find wrong with the page as laid out now, one line each: a word (a run of
 * letters) broken across lines, text smaller than 11 px (SVG text at the size it is drawn), a chart label that
 * overlaps another or sticks out of its chart. Only what is visible counts.
 */
export function layoutProblemsInPage() {
  const problems = [];
  const shown = (el) =>
    el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true }) &&
    el.closest('details:not([open]) > :not(summary)') === null;
  const where = (el) =>
    `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.getAttribute('class') ? `.${el.getAttribute('class').split(' ')[0]}` : ''}>`;
  const range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const small = new Set();
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
    const parent = node.parentElement;
    const text = node.textContent ?? '';
    if (parent === null || text.trim() === '' || !shown(parent)) continue;
    // SVG text: the size it is drawn at is its font size times the chart's scale.
    const svgText = parent.closest('text');
    const scale = svgText === null ? 1 : (svgText.getScreenCTM()?.a ?? 1);
    const size = Number.parseFloat(getComputedStyle(parent).fontSize) * scale;
    if (size < 11 && !small.has(parent)) {
      small.add(parent);
      problems.push(`text at ${size.toFixed(1)} px in ${where(parent)}: "${text.trim().slice(0, 40)}"`);
    }
    if (svgText !== null) continue;
    // A word is a run of letters: ids and digests (they hold digits) may break anywhere.
    for (const word of text.matchAll(/[\p{L}\p{N}_]{2,}/gu)) {
      if (/[\p{N}_]/u.test(word[0])) continue;
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const lines = new Set(
        [...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)),
      );
      if (lines.size > 1) problems.push(`"${word[0]}" broken across ${lines.size} lines in ${where(parent)}`);
    }
  }
  for (const chart of document.querySelectorAll('svg.chart')) {
    if (!shown(chart)) continue;
    const box = chart.getBoundingClientRect();
    const labels = [...chart.querySelectorAll('text')].map((t) => ({
      text: t.textContent ?? '',
      r: t.getBoundingClientRect(),
    }));
    for (const { text, r } of labels)
      if (
        r.left < box.left - 1 ||
        r.right > box.right + 1 ||
        r.top < box.top - 1 ||
        r.bottom > box.bottom + 1
      )
        problems.push(`chart ${chart.id}: "${text}" sticks out of the chart`);
    for (const [i, a] of labels.entries())
      for (const b of labels.slice(i + 1))
        if (
          a.r.left < b.r.right - 0.5 &&
          b.r.left < a.r.right - 0.5 &&
          a.r.top < b.r.bottom - 0.5 &&
          b.r.top < a.r.bottom - 0.5
        )
          problems.push(`chart ${chart.id}: "${a.text}" overlaps "${b.text}"`);
  }
  return problems;
}

/**
 * True once every chart on the page says it was drawn for the window's current width. Runs in the
 * page, passed as a function: a string predicate would be evaluated there, which the console's CSP
 * (script-src 'self') refuses.
 */
export function chartsDrawnForViewport() {
  return [...document.querySelectorAll('[data-testid="chart"]')].every(
    (chart) => chart.getAttribute('data-viewport') === String(window.innerWidth),
  );
}

/** True once every bar of every chart on the page has a width on screen. Runs in the page (see above). */
export function chartBarsLaidOut() {
  const bars = [...document.querySelectorAll('svg.chart rect.bar')];
  return bars.length > 0 && bars.every((bar) => bar.getBoundingClientRect().width > 0);
}
