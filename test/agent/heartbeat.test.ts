import assert from "node:assert/strict";
import { test } from "node:test";
import { type AgentOptions, createAgent, READ_BUDGET } from "../../src/agent/heartbeat.ts";
import type { Load } from "../../src/codec.ts";
import { createLogger } from "../../src/log.ts";
import { createSource } from "../../src/sources/index.ts";
import { FakeClock, Recorder, recordingLog } from "../support/fakes.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const GROUP = "239.0.0.1:27999";
const PEER = "10.99.0.2:27999";

/** An agent on a fake clock that stops after `ticks` ticks; the source answers `answer(n)`. */
async function runTicks(
  ticks: number,
  answer: (n: number, signal: AbortSignal) => Promise<Load>,
  options: { clock?: FakeClock; destinations?: string[]; port?: number } = {},
) {
  const clock = options.clock ?? new FakeClock();
  const recorder = new Recorder(clock);
  const log = recordingLog();
  const stop = new AbortController();
  let n = 0;
  await createAgent({
    senders: (options.destinations ?? [GROUP]).map((name) => recorder.sender(name)),
    port: options.port,
    source: {
      description: "test source",
      read: (signal) => {
        const reading = answer(n, signal);
        if (++n === ticks) stop.abort();
        return reading;
      },
    },
    intervalMs: 1000,
    logger: createLogger({ level: "debug", write: log.write, now: () => new Date(clock.now()) }),
    clock,
    signal: stop.signal,
  }).run();
  return { sent: recorder.sent, lines: log.lines, clock };
}

test("agent: one heartbeat per interval to every destination, with port", async () => {
  const { sent } = await runTicks(3, () => Promise.resolve({ ready: 5, busy: 2 }), {
    destinations: [GROUP, PEER],
    port: 8080,
  });
  assert.deepEqual(
    sent,
    [0, 1000, 2000].flatMap((at) => [
      { to: "239.0.0.1:27999", payload: "v=1&ready=5&busy=2&port=8080", at },
      { to: "10.99.0.2:27999", payload: "v=1&ready=5&busy=2&port=8080", at },
    ]),
  );
});

test("agent: a failing source means no heartbeat, logged once when it starts and once when it ends", async () => {
  const { sent, lines } = await runTicks(
    6,
    (n) =>
      n >= 1 && n <= 3
        ? Promise.reject(new Error("connection refused"))
        : Promise.resolve({ ready: n, busy: 1 }),
  );
  assert.deepEqual(sent.map((s) => s.payload), [
    "v=1&ready=0&busy=1",
    "v=1&ready=4&busy=1",
    "v=1&ready=5&busy=1",
  ]);
  const warnings = lines.filter((line) => line.includes(" warn "));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /warn {2}no heartbeat sent: test source: connection refused$/);
  assert.equal(
    lines.filter((line) =>
      /info {2}test source answers again; heartbeats resumed \(after 3 failures in 3 s\)/.test(line)
    ).length,
    1,
  );
});

test("agent: nonsensical numbers from a source are never sent", async () => {
  const answers: Load[] = [
    { ready: -1, busy: 0 },
    { ready: 1.5, busy: 0 },
    { ready: NaN, busy: 0 },
    { ready: 1, busy: 2 ** 40 },
    { ready: "3" as unknown as number, busy: 0 },
    { ready: 3, busy: 1 },
  ];
  const { sent, lines } = await runTicks(answers.length, (n) => Promise.resolve(answers[n]));
  assert.deepEqual(sent.map((s) => s.payload), ["v=1&ready=3&busy=1"]);
  assert.match(
    lines.find((line) => line.includes(" warn "))!,
    /ready must be a whole number from 0 to 4294967295, got -1/,
  );
});

test("agent: a source that hangs costs one heartbeat, not the schedule", async () => {
  let abortedAt: number | undefined;
  const clock = new FakeClock();
  const { sent } = await runTicks(4, (n, signal) => {
    if (n !== 1) return Promise.resolve({ ready: n, busy: 1 });
    signal.addEventListener("abort", () => abortedAt = clock.now());
    return new Promise(() => {}); // never settles, and ignores the signal
  }, { clock });
  assert.deepEqual(sent.map((s) => [s.at, s.payload]), [
    [0, "v=1&ready=0&busy=1"],
    [2000, "v=1&ready=2&busy=1"],
    [3000, "v=1&ready=3&busy=1"],
  ]);
  assert.equal(abortedAt, 1000 + 1000 * READ_BUDGET, "the source is told its deadline passed");
});

test("agent: a destination that fails is logged once and the others still get heartbeats", async () => {
  const clock = new FakeClock();
  const recorder = new Recorder(clock);
  recorder.failing.set(
    GROUP,
    Object.assign(new Error("network is unreachable"), { code: "ENETUNREACH" }),
  );
  const log = recordingLog();
  const stop = new AbortController();
  let reads = 0;
  await createAgent({
    senders: [recorder.sender(GROUP), recorder.sender(PEER)],
    source: {
      description: "s",
      read: () => (++reads === 200 && stop.abort(), Promise.resolve({ ready: 1, busy: 1 })),
    },
    intervalMs: 1000,
    logger: createLogger({ level: "info", write: log.write }),
    clock,
    signal: stop.signal,
  }).run();
  assert.equal(recorder.sent.filter((s) => s.to === PEER).length, 200);
  assert.deepEqual(log.lines.map((line) => line.replace(/^\S+ /, "")), [
    "warn  send 239.0.0.1:27999 failed: network is unreachable (ENETUNREACH)",
    "warn  send 239.0.0.1:27999 failed: network is unreachable (ENETUNREACH) (61 times in 60 s)",
    "warn  send 239.0.0.1:27999 failed: network is unreachable (ENETUNREACH) (121 times in 120 s)",
    "warn  send 239.0.0.1:27999 failed: network is unreachable (ENETUNREACH) (181 times in 180 s)",
  ]);
});

test("agent: one beat is true only when every destination got the heartbeat", async () => {
  const recorder = new Recorder();
  const options: AgentOptions = {
    senders: [recorder.sender(GROUP), recorder.sender(PEER)],
    source: await createSource("static", { names: FLAG_NAMES, ready: 2 }),
    intervalMs: 1000,
    logger: createLogger({ level: "error", write: () => {} }),
    clock: new FakeClock(),
    signal: new AbortController().signal,
  };
  assert.equal(await createAgent(options).beat(), true);
  recorder.failing.set(PEER, new Error("no route"));
  assert.equal(await createAgent(options).beat(), false);
  assert.equal(
    await createAgent({
      ...options,
      source: { description: "down", read: () => Promise.reject(new Error("down")) },
    }).beat(),
    false,
  );
});

test("agent: the farewell is ready=0 with the last busy count and port, to every destination", async () => {
  const recorder = new Recorder();
  const agent = createAgent({
    senders: [recorder.sender("239.0.0.1:27999"), recorder.sender("http://proxy/heartbeat")],
    source: { description: "s", read: () => Promise.resolve({ ready: 9, busy: 4 }) },
    port: 8080,
    intervalMs: 1000,
    logger: createLogger({ level: "error", write: () => {} }),
    clock: new FakeClock(),
    signal: new AbortController().signal,
  });
  assert.equal(await agent.farewell(), true);
  await agent.beat();
  assert.equal(await agent.farewell(), true);
  assert.deepEqual(recorder.sent.map((sent) => `${sent.to} ${sent.payload}`), [
    "239.0.0.1:27999 v=1&ready=0&busy=0&port=8080",
    "http://proxy/heartbeat v=1&ready=0&busy=0&port=8080",
    "239.0.0.1:27999 v=1&ready=9&busy=4&port=8080",
    "http://proxy/heartbeat v=1&ready=9&busy=4&port=8080",
    "239.0.0.1:27999 v=1&ready=0&busy=4&port=8080",
    "http://proxy/heartbeat v=1&ready=0&busy=4&port=8080",
  ]);
});
