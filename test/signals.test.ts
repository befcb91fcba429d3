import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { test } from "node:test";
import { createLogger } from "../src/log.ts";
import { detectRuntime } from "../src/runtime.ts";
import { drainSignals, processSignals } from "../src/signals.ts";

const runtime = detectRuntime();

/** Runs `body` with a timer holding the event loop open: Deno's signal listeners do not. */
async function awake<T>(body: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  try {
    return await body();
  } finally {
    clearInterval(timer);
  }
}

test("signals: SIGTTOU drains and SIGTTIN undrains everywhere; SIGUSR1 drains only where it opens no debugger", () => {
  assert.deepEqual(drainSignals("bun"), {
    drain: ["SIGTTOU", "SIGUSR1"],
    undrain: ["SIGTTIN", "SIGUSR2"],
  });
  assert.deepEqual(drainSignals("deno"), { drain: ["SIGTTOU"], undrain: ["SIGTTIN", "SIGUSR2"] });
});

test("signals: each of the process's signals listened to arrives", () =>
  awake(async () => {
    const lines: string[] = [];
    const signals = processSignals(
      ["SIGTTIN", "SIGUSR2"],
      createLogger({ level: "debug", write: (line) => lines.push(line) }),
    );
    process.kill(process.pid, "SIGTTIN");
    assert.equal(await signals.next(), "SIGTTIN");
    process.kill(process.pid, "SIGUSR2");
    assert.equal(await signals.next(), "SIGUSR2");
    signals.close();
    assert.deepEqual(lines, []);
  }));

/** Whether the kernel discards SIGUSR1 for this process. */
function ignoresSigusr1(): boolean {
  const mask = BigInt(
    `0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))![1]}`,
  );
  return (mask & (1n << 9n)) !== 0n;
}

test(
  "signals: on Deno, SIGUSR1 is set to be ignored once Deno has installed its inspector trigger",
  {
    skip: runtime === "deno" ? false : "Deno only: other runtimes open no debugger on SIGUSR1",
  },
  () =>
    awake(async () => {
      const signals = processSignals(["SIGUSR1", "SIGTTOU"], createLogger({ level: "error" }));
      // Deno installs its trigger 500 ms after start; the guard replaces it within 25 ms.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(ignoresSigusr1(), "SIGUSR1 is not ignored");
      process.kill(process.pid, "SIGUSR1");
      process.kill(process.pid, "SIGTTOU");
      assert.equal(await signals.next(), "SIGTTOU");
      signals.close();
    }),
);
