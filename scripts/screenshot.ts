/**
 * Regenerates the README's pictures of the status pages from a real run: a monitor and four
 * agents in lab namespaces (test/support/status-pages.ts), their loads moving for a minute, one
 * drained, then the monitor's page and an agent's page in headless Chromium.
 *
 *   npx bun scripts/screenshot.ts      (as root, with Debian's chromium; HEARTBEAT_BINARY=PATH
 *                                       runs that binary instead of src/main.ts)
 *
 * Writes docs/status-page.png (the monitor's) and docs/agent-page.png (agent a1's).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { currentRuntime } from "./lab/lab.ts";
import { REPO } from "./repo.ts";
import {
  browserMissing,
  MONITOR_URL,
  openBrowser,
  openPage,
  startPageLab,
  waitInPage,
} from "./lab/pages.ts";

const cannot = browserMissing();
if (cannot) {
  console.error(`screenshot: cannot run: ${cannot}`);
  process.exit(1);
}

/** Each agent's slots, and how its load swings (a phase), so that the sparklines have a shape. */
const AGENTS = [
  { n: 1, slots: 16, phase: 0 },
  { n: 2, slots: 16, phase: 2 },
  { n: 3, slots: 8, phase: 4 },
  { n: 4, slots: 32, phase: 1 },
];
const RUN_SECONDS = 70;
/** Agent 4 drains this long before the picture: silent, greyed from 10 s. */
const DRAIN_BEFORE_SECONDS = 14;

const lab = await startPageLab(currentRuntime(), { loadFile: "load" });
try {
  const loadAt = (agent: (typeof AGENTS)[number], second: number) => {
    const busy = Math.round(
      agent.slots * (0.45 + 0.35 * Math.sin((second / 12) + agent.phase)),
    );
    return { ready: agent.slots - busy, busy };
  };
  const agentUrls = [];
  for (const agent of AGENTS) agentUrls.push(await lab.startAgent(agent.n, loadAt(agent, 0)));
  for (let second = 1; second <= RUN_SECONDS; second++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const agent of AGENTS) lab.setLoad(agent.n, loadAt(agent, second));
    if (second === RUN_SECONDS - DRAIN_BEFORE_SECONDS) lab.drain(4);
    if (second % 10 === 0) console.error(`screenshot: ${second} of ${RUN_SECONDS} s`);
  }
  const browser = await openBrowser(lab.lab);
  try {
    const pictures: [string, string][] = [
      [`${MONITOR_URL}/`, "status-page.png"],
      [agentUrls[0], "agent-page.png"],
    ];
    for (const [url, file] of pictures) {
      const { page, trouble } = await openPage(browser, url);
      // As narrow and short as the page allows: the picture is the page, not a window of white.
      await page.setViewport({ width: 1000, height: 100 });
      // One refresh from /status.json, as a reader would see it.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await waitInPage(page, () => !document.body.classList.contains("stale"), "", "a fresh page");
      if (trouble.length) throw new Error(`${url}: ${trouble.join("; ")}`);
      const png = await page.screenshot({ fullPage: true });
      writeFileSync(join(REPO, "docs", file), png);
      console.error(`screenshot: docs/${file} (${png.length} bytes) from ${url}`);
      await page.close();
    }
  } finally {
    await browser.close();
  }
} finally {
  await lab.close();
}
