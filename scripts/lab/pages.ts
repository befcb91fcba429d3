/**
 * The status pages in a lab, in a real browser: a monitor, agents that come and drain, a hostile
 * sender, and Debian's chromium (headless, driven by puppeteer-core over a pipe) in a namespace of
 * its own, so that it reaches the lab's addresses and nothing else. Used by test/lab/page.test.ts
 * and scripts/screenshot.ts.
 *
 *   monitor  10.99.27.1   heartbeat monitor --listen 10.99.27.1:27999 --http 10.99.27.1:8080
 *   browser  10.99.27.2   chromium
 *   poster   10.99.27.3   POSTs what a hostile sender may
 *   a1..a9   10.99.27.11… agents, each with its page on --http :8081
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { agentCommand, collect, commandAvailable, Lab, type RuntimeName, waitFor } from "./lab.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const MONITOR_URL = "http://10.99.27.1:8080";
/** A source name no page may take for markup: a file the agents read their load from. */
export const HOSTILE_FILE = `<img src=x onerror=alert(1)>`;
/** What a sender controls in a POST: fields the monitor takes, and those it ignores. */
export const HOSTILE_POST = `v=1&ready=1&busy=0&x=<script>alert(2)</script>&port=<b>8080</b>`;

/** Why the status pages cannot be driven here, or undefined when chromium is at hand. */
export function browserMissing(): string | undefined {
  return commandAvailable("chromium")
    ? undefined
    : `${CHROMIUM} is missing (apt-get install chromium)`;
}

export interface PageLab {
  lab: Lab;
  monitorLog: () => { stdout: string; stderr: string };
  /** Starts agent `a<n>` (10.99.27.1n), its load in a file; returns its page's URL. */
  startAgent(n: number, load: { ready: number; busy: number }): Promise<string>;
  /** Sets agent n's load, as its application would. */
  setLoad(n: number, load: { ready: number; busy: number }): void;
  /** Drains agent n by its drain file. */
  drain(n: number): void;
  /** POSTs `body` to the monitor from 10.99.27.3; the monitor's answer. */
  post(body: string): Promise<string>;
  close(): Promise<void>;
}

/** `loadFile`: the name of the file each agent reads its load from (HOSTILE_FILE unless given). */
export async function startPageLab(
  runtime: RuntimeName,
  { loadFile: loadFileName = HOSTILE_FILE }: { loadFile?: string } = {},
): Promise<PageLab> {
  const lab = new Lab();
  lab.addSwitch("switch");
  for (
    const [name, address] of [["monitor", "10.99.27.1"], ["browser", "10.99.27.2"], [
      "poster",
      "10.99.27.3",
    ]]
  ) {
    lab.addNamespace(name);
    lab.plug(name, `${address}/24`);
  }
  const monitorLog = collect(lab.spawn(
    "monitor",
    agentCommand(runtime, [
      "monitor",
      "--listen",
      "10.99.27.1:27999",
      "--http",
      "10.99.27.1:8080",
      "--allow",
      "10.99.27.0/24",
      "--storage",
      join(lab.dir, "monitor-hb.dat"),
    ]),
  ));
  await waitFor(
    () => /listening on/.test(monitorLog().stderr),
    20_000,
    `the monitor to start: ${monitorLog().stderr}`,
  );
  const loadFile = (n: number) => join(lab.dir, `a${n}`, loadFileName);
  const setLoad = (n: number, { ready, busy }: { ready: number; busy: number }) =>
    writeFileSync(loadFile(n), `ready=${ready}&busy=${busy}\n`);
  return {
    lab,
    monitorLog,
    async startAgent(n, load) {
      const name = `a${n}`;
      const address = `10.99.27.${10 + n}`;
      lab.addNamespace(name);
      lab.plug(name, `${address}/24`);
      lab.sh(name, `mkdir -p '${join(lab.dir, name)}'`);
      setLoad(n, load);
      const log = collect(lab.spawn(
        name,
        agentCommand(runtime, [
          "-a",
          "10.99.27.1:27999",
          "--source",
          `file:${loadFile(n)}`,
          "--port",
          "8080",
          "--interval",
          "0.5",
          "--http",
          `${address}:8081`,
          "--drain-file",
          join(lab.dir, name, "drain"),
        ]),
      ));
      await waitFor(
        () => /on 10\.99\.27\.\d+:8081/.test(log().stderr),
        20_000,
        `agent ${name} to start: ${log().stderr}`,
      );
      return `http://${address}:8081/`;
    },
    setLoad,
    drain: (n) => writeFileSync(join(lab.dir, `a${n}`, "drain"), ""),
    async post(body) {
      const result = await lab.run("poster", [
        "curl",
        "-sS",
        "--max-time",
        "5",
        "--data-binary",
        body,
        `${MONITOR_URL}/heartbeat`,
      ]);
      return result.stdout + result.stderr;
    },
    close: () => lab.close(),
  };
}

/** Chromium, headless, inside the lab's `browser` namespace (a wrapper: `ip netns exec`). */
export async function openBrowser(lab: Lab): Promise<Browser> {
  const wrapper = join(lab.dir, "chromium");
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.ns("browser")} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return await puppeteer.launch({
    executablePath: wrapper,
    // As root, chromium's sandbox will not start; the pages are the lab's own.
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check"],
    headless: true,
    // A pipe, not a debugging port: the port would be in the browser's namespace, out of reach.
    pipe: true,
    defaultViewport: { width: 1200, height: 700 },
  });
}

/** A tab at `url` that records in `trouble` everything that went wrong on it. */
export async function openPage(
  browser: Browser,
  url: string,
): Promise<{ page: Page; trouble: string[] }> {
  const page = await browser.newPage();
  const trouble: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warn") {
      trouble.push(`console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => trouble.push(`page error: ${error}`));
  page.on("requestfailed", (request) => trouble.push(`request failed: ${request.url()}`));
  page.on("dialog", (dialog) => {
    trouble.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  const response = await page.goto(url, { waitUntil: "load" });
  if (response?.status() !== 200) trouble.push(`${url}: HTTP ${response?.status()}`);
  return { page, trouble };
}

/** A PNG's size and how many different bytes its pixels hold: a blank image has one or two. */
export function pngSummary(
  png: Uint8Array,
): { width: number; height: number; distinctBytes: number } {
  const bytes = Buffer.from(png);
  if (bytes.toString("latin1", 1, 4) !== "PNG") throw new Error("not a PNG");
  const data: Buffer[] = [];
  for (let offset = 8; offset < bytes.length;) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    if (type === "IDAT") data.push(bytes.subarray(offset + 8, offset + 8 + length));
    offset += 12 + length;
  }
  return {
    width: bytes.readUInt32BE(16),
    height: bytes.readUInt32BE(20),
    distinctBytes: new Set(inflateSync(Buffer.concat(data))).size,
  };
}

/**
 * Waits until `check` holds in the page, or fails saying `what` and what the page showed. Polled
 * from here by page.evaluate (the debugging protocol's own calls, which the page's CSP does not
 * govern; waitForFunction's in-page evaluation it would refuse).
 */
export async function waitInPage(
  page: Page,
  check: (argument: string) => boolean,
  argument: string,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(check, argument))) {
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms; the page showed: ${await page.$eval(
          "body",
          (body) => body.textContent ?? "",
        )}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
