/**
 * The status pages in headless Chromium (test/support/status-pages.ts): the monitor's and an
 * agent's page load with no console error, follow agents that start and drain without a reload,
 * show what a hostile sender or a hostile source name holds as text, and are screenshotted.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Browser } from "puppeteer-core";
import { currentRuntime, requiredOrSkipped, skipUnlessLab } from "../support/lab.ts";
import {
  browserMissing,
  HOSTILE_FILE,
  HOSTILE_POST,
  MONITOR_URL,
  openBrowser,
  openPage,
  type PageLab,
  pngSummary,
  startPageLab,
  waitInPage,
} from "../../scripts/lab/pages.ts";

const skip = skipUnlessLab(["curl"]) || requiredOrSkipped(browserMissing());
const runtime = currentRuntime();

let started: Promise<{ lab: PageLab; browser: Browser; agentUrl: string }> | undefined;
let closing: (() => Promise<void>) | undefined;
after(() => closing?.());

function setUp() {
  started ??= (async () => {
    const lab = await startPageLab(runtime);
    closing = () => lab.close();
    const browser = await openBrowser(lab.lab);
    closing = async () => {
      await browser.close();
      await lab.close();
    };
    const agentUrl = await lab.startAgent(1, { ready: 6, busy: 2 });
    return { lab, browser, agentUrl };
  })();
  return started;
}

/** How many points each sparkline on the page has. */
const sparklinePoints = () =>
  [...document.querySelectorAll("svg.spark polyline")].map((line) =>
    line instanceof SVGPolylineElement ? line.points.numberOfItems : 0
  );

test(
  `page ${runtime}: the monitor's page follows agents that start and drain, and shows a hostile POST as text`,
  {
    skip,
  },
  async () => {
    const { lab, browser } = await setUp();
    const { page, trouble } = await openPage(browser, `${MONITOR_URL}/`);
    await waitInPage(
      page,
      (ip) => document.querySelector(`tr[data-ip="${ip}"]`) !== null,
      "10.99.27.11",
      "the first agent's row",
    );
    // Set in this document: still there after the updates below, so the page was never reloaded.
    await page.evaluate(() => document.body.setAttribute("data-loaded-once", "yes"));
    assert.equal(await lab.post(HOSTILE_POST), "OK");
    await lab.startAgent(2, { ready: 3, busy: 1 });
    await waitInPage(
      page,
      (ip) => document.querySelector(`tr[data-ip="${ip}"]`) !== null,
      "10.99.27.12",
      "the new agent's row",
    );
    await waitInPage(
      page,
      (ip) => document.querySelector(`tr[data-ip="${ip}"] td.via`)?.textContent === "http",
      "10.99.27.3",
      "the hostile POST's row",
    );
    lab.drain(2);
    await waitInPage(
      page,
      (ip) =>
        document.querySelector(`tr[data-ip="${ip}"]`)?.classList.contains("draining") === true,
      "10.99.27.12",
      "the drained agent's row marked draining",
    );
    const shown = await page.evaluate(() => ({
      loadedOnce: document.body.getAttribute("data-loaded-once"),
      rows: [...document.querySelectorAll("#servers tbody tr")].map((row) =>
        row.getAttribute("data-ip")
      ),
      scripts: [...document.querySelectorAll("script")].map((script) => script.getAttribute("src")),
      injected: document.querySelectorAll("main b, main img, main script").length,
      hostile: document.querySelector(`tr[data-ip="10.99.27.3"] td.address`)?.textContent,
      counters: document.querySelector("#counters")?.textContent ?? "",
    }));
    assert.deepEqual(shown.rows, ["10.99.27.3", "10.99.27.11", "10.99.27.12"]);
    assert.equal(shown.loadedOnce, "yes", "updated without reloading");
    assert.deepEqual(shown.scripts, ["/page.js"]);
    assert.equal(shown.injected, 0);
    // port=<b>8080</b> is no port: the monitor takes the heartbeat on port 80, as Apache would.
    assert.equal(shown.hostile, "10.99.27.3:80");
    assert.match(shown.counters, /accepted by udp\d+/);
    await waitInPage(
      page,
      () =>
        [...document.querySelectorAll("svg.spark polyline")].every((line) =>
          line instanceof SVGPolylineElement && line.points.numberOfItems >= 2
        ),
      "",
      "every row's sparkline drawn",
    );
    const points = await page.evaluate(sparklinePoints);
    assert.equal(points.length, 3);
    const png = pngSummary(await page.screenshot({ fullPage: true }));
    assert.equal(png.width, 1200);
    assert.ok(png.distinctBytes > 32, `a screenshot with something on it: ${JSON.stringify(png)}`);
    assert.deepEqual(trouble, []);
    await page.close();
  },
);

test(
  `page ${runtime}: the agent's page shows its heartbeat, destination, a hostile source name as text, its drain`,
  {
    skip,
  },
  async () => {
    const { lab, browser, agentUrl } = await setUp();
    const { page, trouble } = await openPage(browser, agentUrl);
    lab.setLoad(1, { ready: 9, busy: 3 });
    await waitInPage(
      page,
      (text) => document.querySelector("#facts")?.textContent?.includes(text) === true,
      "ready=9 busy=3",
      "the new load in the last heartbeat",
    );
    const shown = await page.evaluate(() => ({
      destination: [...document.querySelectorAll("#destinations tbody td")].map((cell) =>
        cell.textContent
      ).slice(0, 2),
      source: document.querySelector("#sources tbody td")?.textContent ?? "",
      injected: document.querySelectorAll("main img, main script").length,
      health: document.querySelector("#health")?.textContent,
    }));
    assert.deepEqual(shown.destination, ["10.99.27.1:27999", "yes"]);
    assert.ok(shown.source.endsWith(`/${HOSTILE_FILE}`), shown.source);
    assert.equal(shown.injected, 0);
    assert.equal(shown.health, "ok");
    await waitInPage(
      page,
      () =>
        [...document.querySelectorAll("svg.spark polyline")].every((line) =>
          line instanceof SVGPolylineElement && line.points.numberOfItems >= 4
        ),
      "",
      "ready's and busy's sparklines drawn",
    );
    assert.equal((await page.evaluate(sparklinePoints)).length, 2);
    const png = pngSummary(await page.screenshot({ fullPage: true }));
    assert.ok(png.distinctBytes > 32, `a screenshot with something on it: ${JSON.stringify(png)}`);
    lab.drain(1);
    await waitInPage(
      page,
      () => document.querySelector("#drain")?.textContent?.startsWith("draining") === true,
      "",
      "the drain shown",
    );
    assert.deepEqual(trouble, []);
    await page.close();
  },
);
