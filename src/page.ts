/**
 * What the monitor's and the agent's status pages (`GET /`) share: the HTML builder, the
 * sparkline, a ring buffer for its history, the CSS, the script that refreshes a page each second,
 * and the answers with their Content-Security-Policy. No external asset and no framework: the
 * binary carries all of it.
 *
 * A page is rendered by one function, `render(data, tools)`, run twice: on the server with
 * `tools.h = htmlElement` (markup, every text and attribute escaped) for the page as served, and in
 * the browser with `tools.h = domElement` (DOM nodes, text only through text nodes) each second from
 * `/status.json`. The browser gets those very functions as their source (Function's toString),
 * so what it runs is what is type-checked and tested here: each is self-contained, using only its
 * parameters and the browser's globals.
 */

/** Builds an element of `tag` with `attributes` and `children` (nodes, or text). */
export type Element<N> = (
  tag: string,
  attributes: Record<string, string | number>,
  ...children: (N | string)[]
) => N;

/** What a page's render function gets besides its data. */
export interface RenderTools<N> {
  h: Element<N>;
  spark: typeof sparkPoints;
}

/** Markup already escaped, as htmlElement builds it. */
export interface Markup {
  html: string;
}

/** `text` safe as HTML text or as a double-quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** The server's Element: markup, with every text child and attribute value escaped. */
export const htmlElement: Element<Markup> = (tag, attributes, ...children) => ({
  html: `<${tag}${
    Object.entries(attributes).map(([name, value]) => ` ${name}="${escapeHtml(String(value))}"`)
      .join("")
  }>${
    children.map((child) => typeof child === "string" ? escapeHtml(child) : child.html).join("")
  }</${tag}>`,
});

/**
 * The browser's Element: DOM nodes, SVG's in SVG's namespace; text goes in as text nodes, never
 * as markup.
 */
export function domElement(
  tag: string,
  attributes: Record<string, string | number>,
  ...children: (Node | string)[]
): Node {
  const svg = ["svg", "polyline", "rect", "line"].includes(tag);
  const element = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/**
 * A sparkline's `points` for an SVG polyline `width` by `height`: the values left to right, 0 at
 * the bottom and `top` (the largest value, or 1, unless given) at the top. One value is drawn as a
 * short flat line, so that a server heard once still has a line.
 */
export function sparkPoints(
  values: readonly number[],
  width: number,
  height: number,
  top?: number,
): string {
  if (values.length === 0) return "";
  const series = values.length === 1 ? [values[0], values[0]] : values;
  const highest = top ?? Math.max(1, ...series);
  const step = width / (series.length - 1);
  return series.map((value, i) => {
    const y = height - (Math.max(0, Math.min(value, highest)) / highest) * height;
    return `${Math.round(i * step * 10) / 10},${Math.round(y * 10) / 10}`;
  }).join(" ");
}

/**
 * The last `capacity` numbers pushed, in fixed memory (a Float32Array: whole numbers exact to 2^24,
 * more than any worker count), oldest first.
 */
export class Ring {
  readonly #values: Float32Array;
  #next = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#values = new Float32Array(capacity);
  }

  push(value: number): void {
    this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.#values.length;
    this.#length = Math.min(this.#length + 1, this.#values.length);
  }

  /** Replaces the newest value (pushes it into an empty ring). */
  replaceLast(value: number): void {
    if (this.#length === 0) return this.push(value);
    this.#values[(this.#next - 1 + this.#values.length) % this.#values.length] = value;
  }

  values(): number[] {
    const start = (this.#next - this.#length + this.#values.length) % this.#values.length;
    return Array.from(
      { length: this.#length },
      (_, i) => this.#values[(start + i) % this.#values.length],
    );
  }
}

/**
 * The browser's loop: every second, `/status.json` rendered into `#page`; the page is marked stale
 * (greyed, and says so) while the server does not answer.
 */
export function refreshEverySecond(
  h: Element<Node>,
  spark: typeof sparkPoints,
  render: (data: unknown, tools: RenderTools<Node>) => Node,
): void {
  const main = document.getElementById("page");
  const refresh = async () => {
    try {
      const response = await fetch("/status.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      main?.replaceChildren(render(await response.json(), { h, spark }));
      document.body.classList.remove("stale");
    } catch {
      document.body.classList.add("stale");
    }
    setTimeout(refresh, 1000);
  };
  setTimeout(refresh, 1000);
}

/**
 * The page's script, from the functions themselves: the DOM builder, the sparkline and the page's
 * `render`, handed to the refresh loop.
 */
export function pageScript(render: (data: never, tools: never) => unknown): string {
  return `"use strict";\n(${refreshEverySecond})(${domElement}, ${sparkPoints}, ${render});\n`;
}

export const PAGE_CSS = `
:root { color-scheme: light dark; --muted: #888; --ready: #2a9d3a; --busy: #d08a1c; --line: #8884; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
body.stale main { opacity: 0.5; }
body.stale::before { content: "not updating: the server does not answer"; color: #c33; }
h1 { font-size: 1.3em; margin: 0 0 0.5em; }
h2 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid var(--line); text-align: left; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.old td { color: var(--muted); }
tr.draining td.state, .bad { color: #c33; font-weight: 600; }
.good { color: var(--ready); }
svg.bar .ready { fill: var(--ready); }
svg.bar .busy { fill: var(--busy); }
svg.bar .empty { fill: var(--line); }
svg.spark polyline { fill: none; stroke-width: 1.5; }
svg.spark polyline.ready { stroke: var(--ready); }
svg.spark polyline.busy { stroke: var(--busy); }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
.note { color: var(--muted); font-size: 0.9em; }
`;

/**
 * No source but this server, no inline script or style, nothing framed or posted: an injected
 * `<script>` or `style=` would not run even if it got past the escaping.
 */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The paths a status page answers. */
export const PAGE_PATHS = ["/", "/status.json", "/page.js", "/page.css", "/favicon.ico"];

export interface PageAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/**
 * The answer to GET `path` (one of PAGE_PATHS) for a page titled `title`: the page as rendered now,
 * its data, its script, its CSS, and no favicon (a 204, so that the browser logs no error).
 */
export function pageAnswer<T>(
  path: string,
  page: {
    title: string;
    data: () => T;
    render: (data: T, tools: RenderTools<Markup>) => Markup;
    script: string;
  },
): PageAnswer {
  const headers = (type: string) => ({
    "Content-Type": type,
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
  });
  switch (path) {
    case "/status.json":
      return {
        status: 200,
        body: `${JSON.stringify(page.data())}\n`,
        headers: headers("application/json"),
      };
    case "/page.js":
      return { status: 200, body: page.script, headers: headers("text/javascript; charset=utf-8") };
    case "/page.css":
      return { status: 200, body: PAGE_CSS, headers: headers("text/css; charset=utf-8") };
    case "/favicon.ico":
      return { status: 204, body: "", headers: headers("text/plain") };
    default: {
      const main = page.render(page.data(), { h: htmlElement, spark: sparkPoints }).html;
      const title = escapeHtml(page.title);
      return {
        status: 200,
        body: `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="/page.css">
<script src="/page.js" defer></script>
</head>
<body>
<h1>${title}</h1>
<main id="page">${main}</main>
</body>
</html>
`,
        headers: headers("text/html; charset=utf-8"),
      };
    }
  }
}
