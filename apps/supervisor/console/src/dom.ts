import { defaultChartWidth, type Chart, type SvgNode } from '../../src/charts/svg.js';

/** A child of an element: text, a node, nothing, or a list of those. */
export type Child = Node | string | number | null | undefined | false | Child[];

type Attrs = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

/** Builds an element: `h('a', { href: '#/runs' }, 'Runs')`. `on*` attributes are listeners. */
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    // Through the CSSOM: the console's CSP refuses style attributes.
    else if (key === 'style') el.style.cssText = String(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

const svgNs = 'http://www.w3.org/2000/svg';

export function svg(
  tag: string,
  attrs: Record<string, string | number> = {},
  ...children: Array<Node | string>
) {
  const el = document.createElementNS(svgNs, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children)
    el.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  return el;
}

/** A chart from the shared chart module (src/charts/svg.ts) as DOM nodes. */
function fromNode(node: SvgNode): SVGElement {
  return svg(
    node.tag,
    node.attrs,
    ...node.children.map((child) => (typeof child === 'string' ? child : fromNode(child))),
  );
}

/**
 * The width a chart is drawn at: what a card leaves inside the page at this viewport, at most the
 * charts' own width. Drawn at the width it is shown at, its text keeps its size on a phone.
 */
export function chartWidth(): number {
  const main = document.querySelector('main');
  if (main === null) return defaultChartWidth;
  const px = (value: string) => Number.parseFloat(value) || 0;
  const page = getComputedStyle(main);
  const rem = px(getComputedStyle(document.documentElement).fontSize);
  // Inside main's padding, less a card's padding (1rem each side) and border (1px each side).
  const available = main.clientWidth - px(page.paddingLeft) - px(page.paddingRight) - 2 * rem - 2;
  return Math.max(200, Math.min(defaultChartWidth, Math.floor(available)));
}

/** A chart in a captioned card, marked with the viewport width it was drawn for. */
export function chart(c: Chart): HTMLElement {
  return h(
    'figure',
    { class: 'card', 'data-testid': 'chart', 'data-chart': c.id, 'data-viewport': window.innerWidth },
    h('figcaption', {}, c.title),
    fromNode(c.svg),
  );
}

export const ms = (value: number): string =>
  value >= 60_000
    ? `${(value / 60_000).toFixed(1)} min`
    : value >= 1000
      ? `${(value / 1000).toFixed(1)} s`
      : `${Math.round(value)} ms`;

export const usd = (value: number): string => `$${value.toFixed(4)}`;

export const int = (value: number): string => value.toLocaleString('en-US');

export const time = (iso: string | null): string => (iso === null ? '—' : iso.replace('T', ' ').slice(0, 19));

export function status(value: string): HTMLElement {
  return h('span', { class: `status status-${value}`, 'data-testid': 'status' }, value);
}

export function json(value: unknown): HTMLElement {
  return h('pre', { class: 'json' }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}
