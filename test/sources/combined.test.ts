/** src/sources/combined.ts: several sources as one, the tightest, and smoothing on a fake clock */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Load } from "../../src/codec.ts";
import { combineSources } from "../../src/sources/combined.ts";
import { createSources } from "../../src/sources/index.ts";
import { type Source, SourceConfigError } from "../../src/sources/source.ts";
import { FakeClock } from "../support/fakes.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const never = new AbortController().signal;

/** A source that answers whatever `load` holds when read; an Error there is a rejection. */
function settable(description: string, load: Load | Error, defaultSmoothSeconds?: number) {
  const source = {
    description,
    defaultSmoothSeconds,
    load,
    read: () =>
      source.load instanceof Error ? Promise.reject(source.load) : Promise.resolve({
        ...source.load,
      }),
  };
  return source;
}

function combined(
  sources: [string, Source][],
  options: { smoothSeconds?: number; clock?: FakeClock } = {},
) {
  const clock = options.clock ?? new FakeClock();
  return combineSources(sources.map(([name, source]) => ({ name, source })), {
    smoothSeconds: options.smoothSeconds,
    now: () => clock.now(),
  });
}

test("combined: one source unsmoothed is its reading to the slot, whatever the numbers", async () => {
  const source = settable("static ready=29 busy=71", { ready: 29, busy: 71 });
  const one = combined([["static", source]]);
  assert.equal(one.description, "static ready=29 busy=71");
  for (
    const load of [
      { ready: 29, busy: 71 },
      { ready: 0, busy: 0 },
      { ready: 0, busy: 5 },
      { ready: 3, busy: 0 },
      // Where a float ratio times the size falls short of a whole number.
      { ready: 0xffff_fffe, busy: 1 },
      { ready: 0xffff_ffff, busy: 0xffff_ffff },
    ]
  ) {
    source.load = load;
    assert.deepEqual(await one.read(never), load);
  }
});

test("combined: the first sets the size, the smallest free share sets ready, each in turn the tight one", async () => {
  const first = settable("static ready=40 busy=10", { ready: 40, busy: 10 });
  const second = settable("file /run/load", { ready: 2, busy: 3 });
  const both = combined([["static", first], ["file:/run/load", second]]);
  assert.equal(
    both.description,
    "the tightest of (static ready=40 busy=10) and (file /run/load)",
  );
  // The file's 40 % free is tighter than the static 80 %: floor(50 × 0.4) = 20.
  assert.deepEqual(await both.read(never), { ready: 20, busy: 30 });
  assert.deepEqual(both.readings(), [
    { name: "static", load: { ready: 40, busy: 10 }, share: 0.8, problem: undefined },
    { name: "file:/run/load", load: { ready: 2, busy: 3 }, share: 0.4, problem: undefined },
  ]);
  // Where auto chose a source, the startup line says why, for each.
  const chosen = combined([["auto", { ...first, chosenBecause: "--ready was given" }], [
    "file:/run/load",
    second,
  ]]);
  assert.equal(
    chosen.description,
    "the tightest of (static ready=40 busy=10 (chosen because --ready was given)) and (file /run/load)",
  );
  assert.equal(chosen.chosenBecause, undefined);
  assert.equal(
    combined([["auto", { ...first, chosenBecause: "--ready was given" }]]).chosenBecause,
    "--ready was given",
  );
  // Now the static one is the tight one: its own numbers go out.
  second.load = { ready: 99, busy: 1 };
  assert.deepEqual(await both.read(never), { ready: 40, busy: 10 });
  // floor: 50 × 1/3 = 16.67 is 16 ready, never rounded up to more than is free.
  second.load = { ready: 1, busy: 2 };
  assert.deepEqual(await both.read(never), { ready: 16, busy: 34 });
  // A second source with no slots at all has nothing free: ready 0, the size stays the first's.
  second.load = { ready: 0, busy: 0 };
  assert.deepEqual(await both.read(never), { ready: 0, busy: 50 });
  // A first source with no slots: a size of 0, whatever the others say.
  first.load = { ready: 0, busy: 0 };
  second.load = { ready: 5, busy: 0 };
  assert.deepEqual(await both.read(never), { ready: 0, busy: 0 });
});

test("combined: any source without a truthful answer means no answer, naming that source", async () => {
  const first = settable("static ready=4 busy=0", { ready: 4, busy: 0 });
  const second = settable("exec load", new Error("`load` exited with status 1"));
  const both = combined([["static", first], ["exec:load", second]]);
  await assert.rejects(both.read(never), /^Error: exec:load: `load` exited with status 1$/);
  assert.equal(both.readings()[0].problem, undefined);
  assert.deepEqual(both.readings()[0].load, { ready: 4, busy: 0 });
  assert.equal(both.readings()[1].problem, "`load` exited with status 1");
  // Nonsense is no answer either.
  second.load = { ready: -1, busy: 2 };
  await assert.rejects(both.read(never), /exec:load: ready must be a whole number/);
  second.load = { ready: 1, busy: 1 };
  assert.deepEqual(await both.read(never), { ready: 2, busy: 2 });
  assert.equal(both.readings()[1].problem, undefined);
  // One source alone: its own error, as before there were several.
  const alone = combined([["exec:load", settable("exec load", new Error("exited"))]]);
  await assert.rejects(alone.read(never), /^Error: exited$/);
});

test("combined: all sources are read at once, within the one deadline", async () => {
  const started: string[] = [];
  const slow = (name: string): Source => ({
    description: name,
    read: (signal) => {
      started.push(name);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ ready: 1, busy: 1 }), 10_000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    },
  });
  const both = combined([["a", slow("a")], ["b", slow("b")]]);
  const deadline = new AbortController();
  const reading = both.read(deadline.signal);
  assert.deepEqual(started, ["a", "b"]);
  deadline.abort(new Error("too late"));
  await assert.rejects(reading, /a: too late/);
});

test("combined: --smooth averages each free share with the time constant, on the clock's elapsed time", async () => {
  const clock = new FakeClock();
  const size = settable("static ready=100 busy=0", { ready: 100, busy: 0 });
  const noisy = settable("noisy", { ready: 100, busy: 0 });
  const both = combined([["static", size], ["noisy", noisy]], { smoothSeconds: 2, clock });
  assert.match(both.description, /\(static ready=100 busy=0, smoothed over 2 s\)/);
  assert.match(both.description, /\(noisy, smoothed over 2 s\)/);
  // The first reading is taken as it is.
  assert.deepEqual(await both.read(never), { ready: 100, busy: 0 });
  // A step from all free to none: after τ, 1 − 1/e of the way (63 %); after 3τ, 95 %.
  noisy.load = { ready: 0, busy: 100 };
  clock.advance(2000);
  assert.deepEqual(await both.read(never), { ready: 36, busy: 64 }); // 100 × e^−1 = 36.8
  assert.ok(Math.abs(both.readings()[1].share! - Math.exp(-1)) < 1e-12);
  // One read 4 s later (a read failed, or the interval is long) weighs as much as the 4 s.
  clock.advance(4000);
  assert.deepEqual(await both.read(never), { ready: 4, busy: 96 }); // 100 × e^−3 = 4.98
  // No time passed: the reading does not move the average at all.
  noisy.load = { ready: 100, busy: 0 };
  assert.deepEqual(await both.read(never), { ready: 4, busy: 96 });
  // Ticks of a second: the average climbs back smoothly rather than jumping to 100.
  const climb: number[] = [];
  for (let second = 0; second < 6; second++) {
    clock.advance(1000);
    climb.push((await both.read(never)).ready);
  }
  assert.deepEqual(climb, [42, 65, 78, 87, 92, 95]);
});

test("combined: a steady reading, smoothed, settles on itself to the slot, not one short for ever", async () => {
  const clock = new FakeClock();
  const source = settable("exec load", { ready: 0, busy: 7 });
  const alone = combined([["exec:load", source]], { smoothSeconds: 2, clock });
  await alone.read(never);
  source.load = { ready: 1, busy: 6 };
  for (let second = 0; second < 200; second++) {
    clock.advance(1000);
    await alone.read(never);
  }
  // The float average alone creeps to 0.14285714285714282, a hair under 1/7: ready 0.
  assert.deepEqual(await alone.read(never), { ready: 1, busy: 6 });
  assert.equal(alone.readings()[0].share, 1 / 7);
  // 29 of 100 free is 29, though 100 × 0.29 is 28.999999999999996 in floating point.
  source.load = { ready: 29, busy: 71 };
  for (let second = 0; second < 200; second++) {
    clock.advance(1000);
    await alone.read(never);
  }
  assert.deepEqual(await alone.read(never), { ready: 29, busy: 71 });
});

test("combined: smoothing keeps a noisy source from jumping, and one smoothed source still reports its own size", async () => {
  const clock = new FakeClock();
  const noisy = settable("cpu", { ready: 50, busy: 50 }, 3);
  const alone = combined([["cpu", noisy]], { clock });
  assert.equal(alone.description, "cpu, smoothed over 3 s");
  assert.deepEqual(await alone.read(never), { ready: 50, busy: 50 });
  const seen: number[] = [];
  for (let tick = 0; tick < 20; tick++) {
    clock.advance(1000);
    noisy.load = tick % 2 ? { ready: 80, busy: 20 } : { ready: 20, busy: 80 };
    const load = await alone.read(never);
    assert.equal(load.ready + load.busy, 100);
    seen.push(load.ready);
  }
  // Unsmoothed it would swing 20 ↔ 80 every tick; averaged over 3 s it stays near 50.
  for (const ready of seen) assert.ok(ready >= 40 && ready <= 60, `ready ${ready}`);
  for (let tick = 1; tick < seen.length; tick++) {
    assert.ok(Math.abs(seen[tick] - seen[tick - 1]) <= 20, `${seen}`);
  }
  // A source's own default gives way to an explicit --smooth, 0 included.
  const unsmoothed = combined([["cpu", noisy]], { clock, smoothSeconds: 0 });
  assert.equal(unsmoothed.description, "cpu");
  noisy.load = { ready: 20, busy: 80 };
  await unsmoothed.read(never);
  clock.advance(1000);
  noisy.load = { ready: 80, busy: 20 };
  assert.deepEqual(await unsmoothed.read(never), { ready: 80, busy: 20 });
});

test("combined: the sources are made in order, and one named twice is a configuration mistake", async () => {
  const made = await createSources(["static", "file:/run/load"], { names: FLAG_NAMES, ready: 3 });
  assert.deepEqual(made.map(({ name }) => name), ["static", "file:/run/load"]);
  assert.equal(made[1].source.description, "file /run/load");
  await assert.rejects(
    createSources(["static", "static"], { names: FLAG_NAMES, ready: 3 }),
    (error) =>
      error instanceof SourceConfigError &&
      error.message === "--source static is given twice: give each source once",
  );
});
