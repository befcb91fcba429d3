/** The status pages' shared pieces (src/page.ts): escaping, the sparkline, the ring buffer, the answers. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  escapeHtml,
  htmlElement,
  PAGE_CSP,
  PAGE_PATHS,
  pageAnswer,
  pageScript,
  Ring,
  sparkPoints,
} from "../src/page.ts";

const HOSTILE = `<script>alert("x")</script><img src=x onerror='alert(1)'>&amp;`;

test("page: escapeHtml leaves no markup, quote or entity a sender could use", () => {
  const escaped = escapeHtml(HOSTILE);
  assert.doesNotMatch(escaped, /[<>"']|&(?!#\d+;)/);
  assert.equal(escapeHtml(`a<b & "c" 'd'>`), "a&#60;b &#38; &#34;c&#34; &#39;d&#39;&#62;");
});

test("page: htmlElement escapes text and attribute values, and keeps its own children's markup", () => {
  const cell = htmlElement("td", { title: HOSTILE, class: "x" }, HOSTILE);
  const row = htmlElement("tr", {}, cell, "plain");
  assert.equal(row.html, `<tr>${cell.html}plain</tr>`);
  assert.doesNotMatch(row.html, /<script|<img/);
  assert.match(cell.html, /^<td title="[^"<>]*" class="x">[^<>]*<\/td>$/);
});

test("page: sparkPoints spans the width, 0 at the bottom and the top at the top", () => {
  assert.equal(sparkPoints([], 100, 10), "");
  assert.equal(sparkPoints([5], 100, 10), "0,0 100,0");
  assert.equal(sparkPoints([0, 5, 10], 100, 10), "0,10 50,5 100,0");
  assert.equal(sparkPoints([0, 5, 20], 100, 10, 10), "0,10 50,5 100,0", "clipped at top");
  assert.equal(sparkPoints([0, 0], 100, 10), "0,10 100,10", "all 0: flat at the bottom");
  assert.equal(sparkPoints([1, 2, 3, 4], 90, 10).split(" ").length, 4);
});

test("page: Ring keeps the last `capacity` values, oldest first, in fixed memory", () => {
  const ring = new Ring(3);
  assert.deepEqual(ring.values(), []);
  ring.replaceLast(7);
  assert.deepEqual(ring.values(), [7]);
  ring.push(1);
  assert.deepEqual(ring.values(), [7, 1]);
  for (let i = 2; i <= 1000; i++) ring.push(i);
  assert.deepEqual(ring.values(), [998, 999, 1000]);
  ring.replaceLast(5);
  assert.deepEqual(ring.values(), [998, 999, 5]);
});

test("page: the page, its data, script and CSS, each under a CSP that allows this server only", () => {
  const render = (data: { text: string }, { h }: { h: typeof htmlElement }) =>
    h("p", { id: "x" }, data.text);
  const page = {
    title: `<b>t</b>`,
    data: () => ({ text: HOSTILE }),
    render,
    script: pageScript(render),
  };
  for (const path of PAGE_PATHS) {
    const answer = pageAnswer(path, page);
    assert.equal(answer.headers["Content-Security-Policy"], PAGE_CSP, path);
    assert.equal(answer.headers["X-Content-Type-Options"], "nosniff", path);
  }
  assert.doesNotMatch(PAGE_CSP, /unsafe|https?:|\*/);
  const html = pageAnswer("/", page);
  assert.equal(html.headers["Content-Type"], "text/html; charset=utf-8");
  assert.match(html.body, /<main id="page"><p id="x">&#60;script&#62;/);
  assert.doesNotMatch(html.body, /<script>|<img|<b>/);
  assert.match(html.body, /<script src="\/page.js" defer><\/script>/);
  assert.deepEqual(JSON.parse(pageAnswer("/status.json", page).body), { text: HOSTILE });
  const script = pageAnswer("/page.js", page).body;
  // The functions themselves, as JavaScript the browser can parse (types gone).
  new Function(script);
  assert.match(script, /createTextNode|append/);
  assert.equal(pageAnswer("/favicon.ico", page).status, 204);
  assert.match(pageAnswer("/page.css", page).headers["Content-Type"], /^text\/css/);
});
