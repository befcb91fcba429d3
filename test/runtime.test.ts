import assert from "node:assert/strict";
import { test } from "node:test";
import { allowOptimizingJit, detectRuntime } from "../src/runtime.ts";
import { adapterUnavailable, defaultAdapter, loadAdapter } from "../src/transport/index.ts";
import { ADAPTERS } from "../src/transport/transport.ts";

test("runtime: detected from the runtime's global, Bun before Deno", () => {
  assert.equal(detectRuntime({ Bun: {} }), "bun");
  assert.equal(detectRuntime({ Deno: {} }), "deno");
  assert.equal(detectRuntime({}), "node");
  assert.equal(detectRuntime(), "Bun" in globalThis ? "bun" : "deno");
});

test("runtime: the default adapter is the runtime's own, node:dgram elsewhere", () => {
  const runtime = detectRuntime();
  assert.equal(defaultAdapter(), runtime);
  assert.equal(defaultAdapter("node"), "node");
  assert.equal(adapterUnavailable("node"), undefined);
  assert.equal(adapterUnavailable(runtime), undefined);
  const foreign = runtime === "deno" ? "bun" : "deno";
  assert.equal(
    adapterUnavailable(foreign),
    `the ${foreign} adapter needs the ${foreign} runtime; this is ${runtime}`,
  );
});

test("runtime: every adapter module loads on every runtime and exports the contract", async () => {
  for (const adapter of ADAPTERS) {
    const module = await loadAdapter(adapter);
    assert.equal(typeof module.openUdpTransport, "function", adapter);
    assert.equal(typeof module.openUdpListener, "function", adapter);
  }
});

test("runtime: the monitor lifts the compiled binary's JIT policy on Bun, and is a no-op elsewhere", () => {
  const scales: number[] = [];
  allowOptimizingJit({ Bun: { unsafe: { setJITPolicy: (scale: number) => scales.push(scale) } } });
  assert.deepEqual(scales, [1]);
  allowOptimizingJit({ Deno: {} });
  allowOptimizingJit({});
});
