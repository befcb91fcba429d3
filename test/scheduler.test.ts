import assert from "node:assert/strict";
import { test } from "node:test";
import { type Clock, runEvery, systemClock } from "../src/scheduler.ts";
import { FakeClock } from "./support/fakes.ts";

/** Deterministic pseudo-random numbers in [0, 1), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

/** Runs `runEvery` until `ticks` ticks have started; returns when each one started. */
async function startTimes(
  clock: Clock & { advance?(ms: number): void },
  intervalMs: number,
  ticks: number,
  work: (n: number) => number = () => 0,
  onSkipped?: (count: number) => void,
): Promise<number[]> {
  const stop = new AbortController();
  const started: number[] = [];
  await runEvery((n) => {
    started.push(clock.now());
    clock.advance?.(work(n));
    if (started.length === ticks) stop.abort();
    return Promise.resolve();
  }, { intervalMs, clock, signal: stop.signal, onSkipped });
  return started;
}

test("scheduler: no drift over 3600 ticks whose work takes varying time", async () => {
  const clock = new FakeClock();
  clock.time = 123_456;
  const jitter = random(42);
  const started = await startTimes(clock, 1000, 3600, () => jitter() * 400);
  assert.equal(started.length, 3600);
  started.forEach((at, n) => assert.equal(at, 123_456 + n * 1000, `tick ${n}`));
});

test("scheduler: fractional intervals keep exact deadlines", async () => {
  const clock = new FakeClock();
  const started = await startTimes(clock, 250, 400, (n) => (n % 7) * 10);
  started.forEach((at, n) => assert.equal(at, n * 250));
});

test("scheduler: a tick that overruns skips the passed deadlines instead of piling up", async () => {
  const clock = new FakeClock();
  const skipped: number[] = [];
  const started = await startTimes(
    clock,
    1000,
    8,
    (n) => n === 2 ? 3500 : 10,
    (count) => skipped.push(count),
  );
  // Tick 2 runs from 2000 to 5500: deadlines 3000, 4000 and 5000 are dropped.
  assert.deepEqual(started, [0, 1000, 2000, 6000, 7000, 8000, 9000, 10000]);
  assert.deepEqual(skipped, [3]);
  for (let i = 1; i < started.length; i++) assert.ok(started[i] - started[i - 1] >= 1000);
});

test("scheduler: a tick ending exactly on the next deadline does not skip it", async () => {
  const clock = new FakeClock();
  const started = await startTimes(clock, 1000, 3, () => 1000);
  assert.deepEqual(started, [0, 1000, 2000]);
});

test("scheduler: timers that wake early are slept again until the deadline", async () => {
  const clock = new FakeClock();
  clock.sleep = (ms, signal) => {
    if (!signal.aborted) clock.time += ms > 5 ? ms - 5 : ms;
    return Promise.resolve();
  };
  const started = await startTimes(clock, 1000, 50);
  started.forEach((at, n) => assert.equal(at, n * 1000));
});

test("scheduler: aborting stops the loop during the wait", async () => {
  const stop = new AbortController();
  let ticks = 0;
  const done = runEvery(() => {
    ticks++;
    return Promise.resolve();
  }, { intervalMs: 60_000, clock: systemClock, signal: stop.signal });
  await new Promise((resolve) => setTimeout(resolve, 20));
  stop.abort();
  await done;
  assert.equal(ticks, 1);
});

test("scheduler: on the real clock, ticks are never early", async () => {
  const intervalMs = 30;
  const start = performance.now();
  const started = await startTimes(systemClock, intervalMs, 10);
  started.forEach((at, n) =>
    assert.ok(
      at >= start + n * intervalMs - 0.5,
      `tick ${n} early by ${start + n * intervalMs - at} ms`,
    )
  );
});
