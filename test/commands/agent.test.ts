/**
 * The agent command with a fake context: signals sent by hand, heartbeats recorded instead of
 * sent. Drain, reload and farewell, without a process or a network of their own.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runAgent } from "../../src/commands/agent.ts";
import { type Resolved, resolveSettings } from "../../src/settings.ts";
import { DRAIN_FILE_POLL_MS, DRAIN_REPEAT_MS } from "../../src/agent/shaping.ts";
import { drainSignals } from "../../src/signals.ts";
import { FakeClock, fakeContext, type FakeSignals, INVOCATION } from "../support/fakes.ts";
import { waitFor } from "../../scripts/lab/lab.ts";

function configured(flags: Record<string, string>): Resolved {
  return resolveSettings({
    flags: { address: ["239.0.0.1:27999"], interval: "0.02", ...flags },
    env: {},
  });
}

/** Never aborted: a test's own sleeps on the fake clock. */
const FOREVER = new AbortController().signal;

/**
 * waitFor on `clock`'s time: lets it run, a millisecond at a time, until `check` holds, and fails
 * after `timeoutMs` of it. (Its timers fire only while nothing else runs, so a real-time poll
 * would never get a turn.)
 */
async function waitOn(clock: FakeClock, check: () => boolean, timeoutMs: number, what: string) {
  const deadline = clock.now() + timeoutMs;
  while (!check()) {
    if (clock.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await clock.sleep(1, FOREVER);
  }
}

/**
 * Stops the agent of a test that failed before its own SIGTERM: left running, it would keep the
 * fake clock's timers firing, and the test process busy, for ever.
 */
async function stopIfRunning(signals: FakeSignals, running: Promise<number>): Promise<void> {
  if (signals.closed) return;
  signals.send("SIGTERM");
  await running.catch(() => undefined);
}

test("agent command: drain and undrain by signal; SIGTERM sends the farewell ready=0 and exits 0", async () => {
  const clock = new FakeClock();
  const { signals, log, context, payloads } = fakeContext(clock);
  const { drain, undrain } = drainSignals();
  // A short ramp, for the one after the drain: ready is 5 again 50 ms after it ends.
  const resolved = configured({ ready: "5", busy: "1", "ramp-up": "0.05" });
  const running = runAgent(resolved, () => resolved, INVOCATION, context);
  try {
    const count = (payload: string) => payloads().filter((sent) => sent === payload).length;
    await waitOn(clock, () => count("v=1&ready=5&busy=1") >= 2, 5_000, "heartbeats");
    // The start's ramp sent ready=0 too: count from here.
    const zeros = count("v=1&ready=0&busy=1");
    signals.send(drain[0]);
    await waitOn(
      clock,
      () => count("v=1&ready=0&busy=1") >= zeros + 2,
      5_000,
      `the drain announced after ${drain[0]}`,
    );
    // Then nothing, for ten intervals and more: the balancer drops a silent server.
    const announced = payloads().length;
    await clock.sleep(300, FOREVER);
    assert.equal(payloads().length, announced, "silent while drained");
    assert.equal(count("v=1&ready=0&busy=1"), zeros + 2);
    signals.send(undrain[0]);
    const before = count("v=1&ready=5&busy=1");
    await waitOn(
      clock,
      () => count("v=1&ready=5&busy=1") > before,
      5_000,
      `heartbeats again after ${undrain[0]}`,
    );
    signals.send("SIGTERM");
    assert.equal(await running, 0);
    assert.equal(payloads().at(-1), "v=1&ready=0&busy=1", "the farewell comes last");
    assert.ok(signals.closed, "the signals are let go");
    assert.ok(
      (["SIGINT", "SIGTERM", "SIGHUP", ...drain, ...undrain] as const).every((name) =>
        signals.listened.includes(name)
      ),
    );
    const lines = log.lines.join("\n");
    assert.match(
      lines,
      new RegExp(
        `${drain[0]}: drain requested\\n.*draining: advertising ready=0 \\(signal\\)`,
        "s",
      ),
    );
    assert.match(lines, /stopping on SIGTERM: telling the proxies ready=0\n.*stopped$/s);
  } finally {
    await stopIfRunning(signals, running);
  }
});

test("agent command: SIGHUP rereads the configuration; a broken or crashing one is logged and the running one kept", async () => {
  const { signals, log, context, payloads } = fakeContext();
  const configs: (() => Resolved)[] = [
    () => configured({ ready: "9" }),
    () => resolveSettings({ flags: { ttl: "300" }, env: {} }),
    () => {
      throw new Error("the config reader failed");
    },
  ];
  let next = 0;
  const first = configured({ ready: "5" });
  const running = runAgent(first, () => configs[next++](), INVOCATION, context);
  const seen = (ready: number) => payloads().includes(`v=1&ready=${ready}&busy=0`);
  await waitFor(() => seen(5), 5_000, "the first configuration's heartbeats");
  signals.send("SIGHUP");
  await waitFor(() => seen(9), 5_000, "the reread configuration's heartbeats");
  for (
    const broken of [
      "reload: --ttl '300': give a whole number from 0 to 255",
      "reload failed: the config reader failed",
    ]
  ) {
    signals.send("SIGHUP");
    await waitFor(() => log.lines.some((line) => line.includes(broken)), 5_000, broken);
    const sent = payloads().length;
    await waitFor(() => payloads().length > sent + 1, 5_000, "heartbeats going on");
    assert.equal(payloads().at(-1), "v=1&ready=9&busy=0", "the running configuration is kept");
  }
  signals.send("SIGTERM");
  assert.equal(await running, 0);
  assert.equal(payloads().at(-1), "v=1&ready=0&busy=0");
});

test("agent command: a drain by signal says ready=0 twice within a moment, not a tick apart, then nothing", async () => {
  const clock = new FakeClock();
  const { signals, context, recorder } = fakeContext(clock);
  const { drain } = drainSignals();
  // Ticks 10 s apart: any second ready=0 soon after the first is the drain's own repeat.
  const resolved = configured({ ready: "5", busy: "1", interval: "10" });
  const running = runAgent(resolved, () => resolved, INVOCATION, context);
  try {
    await waitOn(clock, () => recorder.sent.length === 1, 5_000, "the first heartbeat");
    signals.send(drain[0]);
    await waitOn(clock, () => recorder.sent.length === 3, 5_000, "two announcements");
    const [, first, second] = recorder.sent;
    assert.deepEqual([first.payload, second.payload], ["v=1&ready=0&busy=1", "v=1&ready=0&busy=1"]);
    assert.ok(
      second.at - first.at >= DRAIN_REPEAT_MS - 5 && second.at - first.at < DRAIN_REPEAT_MS + 200,
      `${second.at - first.at} ms apart`,
    );
    await clock.sleep(2 * DRAIN_REPEAT_MS, FOREVER);
    assert.equal(recorder.sent.length, 3, "silent after the two");
    signals.send("SIGTERM");
    assert.equal(await running, 0);
  } finally {
    await stopIfRunning(signals, running);
  }
});

test("agent command: a drain by --drain-file is said as soon as one by signal: ready=0 twice within a moment of the file, not at the next tick; its end at once too", async () => {
  const clock = new FakeClock();
  const { signals, context, recorder } = fakeContext(clock);
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-drain-"));
  const file = join(dir, "drain");
  // Ticks 10 s apart: whatever comes within a second of the file is the watch's doing.
  const resolved = configured({ ready: "5", busy: "1", interval: "10", "drain-file": file });
  const running = runAgent(resolved, () => resolved, INVOCATION, context);
  try {
    await waitOn(clock, () => recorder.sent.length === 1, 5_000, "the first heartbeat");
    writeFileSync(file, "");
    const createdAt = clock.now();
    await waitOn(clock, () => recorder.sent.length === 3, 2_000, "two announcements");
    const [, first, second] = recorder.sent;
    assert.deepEqual([first.payload, second.payload], [
      "v=1&ready=0&busy=1",
      "v=1&ready=0&busy=1",
    ]);
    assert.ok(
      first.at - createdAt < DRAIN_FILE_POLL_MS + 100,
      `the first ${first.at - createdAt} ms after the file`,
    );
    assert.ok(
      second.at - first.at >= DRAIN_REPEAT_MS - 5 && second.at - first.at < DRAIN_REPEAT_MS + 200,
      `${second.at - first.at} ms apart`,
    );
    await clock.sleep(2 * DRAIN_FILE_POLL_MS, FOREVER);
    assert.equal(recorder.sent.length, 3, "silent after the two");
    rmSync(file);
    await waitOn(clock, () => recorder.sent.length === 4, 2_000, "a heartbeat as the drain ends");
    assert.match(recorder.sent[3].payload, /^v=1&ready=0&busy=1$/, "ramping up from 0");
    signals.send("SIGTERM");
    assert.equal(await running, 0);
  } finally {
    await stopIfRunning(signals, running);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("agent command: without a drain file nothing is looked for between ticks; a reload that names one starts the watch", async () => {
  const clock = new FakeClock();
  const { signals, context, recorder } = fakeContext(clock);
  let polls = 0;
  context.clock = {
    now: () => clock.now(),
    sleep: (ms, signal) => {
      if (ms === DRAIN_FILE_POLL_MS) polls++;
      return clock.sleep(ms, signal);
    },
  };
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-drain-"));
  const file = join(dir, "drain");
  // Ticks 10 s apart: whatever comes within a second of the file is the watch's doing.
  const without = configured({ ready: "5", busy: "1", interval: "10" });
  const withFile = configured({ ready: "5", busy: "1", interval: "10", "drain-file": file });
  let loaded = without;
  const running = runAgent(without, () => loaded, INVOCATION, context);
  try {
    await waitOn(clock, () => recorder.sent.length === 1, 5_000, "the first heartbeat");
    await clock.sleep(3 * DRAIN_FILE_POLL_MS, FOREVER);
    assert.equal(polls, 0, "no wake-ups for a drain file there is none of");
    loaded = withFile;
    signals.send("SIGHUP");
    await waitOn(
      clock,
      () => recorder.sent.length === 2,
      5_000,
      "the first heartbeat after the reload",
    );
    writeFileSync(file, "");
    await waitOn(clock, () => recorder.sent.length === 4, 2_000, "two announcements of the drain");
    assert.ok(polls > 0);
    signals.send("SIGTERM");
    assert.equal(await running, 0);
  } finally {
    await stopIfRunning(signals, running);
    rmSync(dir, { recursive: true, force: true });
  }
});
