/**
 * The process signals heartbeat acts on, as a queue the commands read from: commands take a
 * `SignalSource`, so tests hand them a fake one.
 *
 * Deno (2.9.2 and later) opens its V8 inspector, unauthenticated, on 127.0.0.1:9229 when a
 * process gets SIGUSR1, whatever the program does with the signal; any local process could then
 * attach and run code in heartbeat. So on Deno heartbeat runs with SIGUSR1 blocked from its start
 * (inspector-guard.ts), or, where it could not block it, sets it to be ignored (through libc, once
 * Deno has installed its own handler), and drains on SIGTTOU instead. SIGTTOU and
 * SIGTTIN, HAProxy's pause and resume, drain and undrain on every runtime; SIGUSR1 and SIGUSR2
 * also do where SIGUSR1 opens nothing.
 */
import { constants } from "node:os";
import process from "node:process";
import { clearInterval, setInterval } from "node:timers";
import { sigusr1Blocked, sigusr1NotBlockedBecause } from "./inspector-guard.ts";
import { openLibc } from "./libc.ts";
import type { Logger } from "./log.ts";
import { detectRuntime, type RuntimeName } from "./runtime.ts";

export type SignalName =
  | "SIGINT"
  | "SIGTERM"
  | "SIGHUP"
  | "SIGUSR1"
  | "SIGUSR2"
  | "SIGTTOU"
  | "SIGTTIN";

export interface SignalSource {
  /** The next signal, in the order they arrived. */
  next(): Promise<SignalName>;
  /** Stops listening. */
  close(): void;
}

/** Which signals start and which end a drain on `runtime`. */
export function drainSignals(
  runtime: RuntimeName = detectRuntime(),
): { drain: SignalName[]; undrain: SignalName[] } {
  return runtime === "deno"
    ? { drain: ["SIGTTOU"], undrain: ["SIGTTIN", "SIGUSR2"] }
    : { drain: ["SIGTTOU", "SIGUSR1"], undrain: ["SIGTTIN", "SIGUSR2"] };
}

/**
 * The process's signals `names`, one at a time. On Deno, SIGUSR1 is never listened to, and, unless
 * the process blocks it from its start, is set to be ignored so that it cannot open the inspector.
 */
export function processSignals(
  names: readonly SignalName[],
  logger: Logger,
  runtime: RuntimeName = detectRuntime(),
): SignalSource {
  const listened = runtime === "deno" ? names.filter((name) => name !== "SIGUSR1") : [...names];
  const stopGuard = runtime === "deno" && !sigusr1Blocked()
    ? ignoreInspectorSignal(logger)
    : () => {};
  const arrived: SignalName[] = [];
  let waiting: ((signal: SignalName) => void) | undefined;
  const handler = (signal: NodeJS.Signals) => {
    const name = signal as SignalName;
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve(name);
    } else arrived.push(name);
  };
  for (const name of listened) process.on(name, handler);
  return {
    next: () =>
      arrived.length
        ? Promise.resolve(arrived.shift()!)
        : new Promise((resolve) => waiting = resolve),
    close: () => {
      stopGuard();
      listened.forEach((name) => process.off(name, handler));
    },
  };
}

/** How long after start Deno may still install its SIGUSR1 handler (it waits 500 ms). */
const INSPECTOR_HANDLER_DEADLINE_MS = 5_000;
const GUARD_POLL_MS = 25;
const SIG_IGN = 1n;
const SIG_DFL = 0n;

/** The part of Deno's FFI this uses, so that it type-checks on any runtime. */
interface DenoFfi {
  dlopen(path: string, symbols: {
    signal: { parameters: ["i32", "usize"]; result: "usize" };
  }): { symbols: { signal(signal: number, handler: bigint): bigint }; close(): void };
}

/**
 * Sets SIGUSR1 to be ignored, again each time Deno installs its handler, until Deno has done so
 * (it does once, 500 ms after start). Returns a function that stops watching. A fallback for a
 * process that could not block SIGUSR1 at its start: it leaves the time before it is called, and
 * up to one poll after Deno's handler appears, during which SIGUSR1 opens the inspector.
 */
function ignoreInspectorSignal(logger: Logger): () => void {
  let libc: ReturnType<DenoFfi["dlopen"]> | undefined;
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  try {
    libc = deno &&
      openLibc((path) =>
        deno.dlopen(path, { signal: { parameters: ["i32", "usize"], result: "usize" } })
      );
  } catch {
    // No FFI (no --allow-ffi), or no C library found: said below.
  }
  if (!libc) {
    logger.warn(
      "cannot keep Deno from opening its debugger on SIGUSR1 (give --allow-ffi, or -A): " +
        "do not send this process SIGUSR1; SIGTTOU drains it",
    );
    return () => {};
  }
  if (sigusr1NotBlockedBecause) {
    logger.warn(
      `SIGUSR1 is not blocked (${sigusr1NotBlockedBecause}): ignoring it from now on leaves a ` +
        "moment in which it opens Deno's debugger; do not send it SIGUSR1, drain with SIGTTOU",
    );
  }
  const { signal } = libc.symbols;
  const sigusr1 = constants.signals.SIGUSR1;
  const startedAt = Date.now();
  const ignore = () => {
    const previous = signal(sigusr1, SIG_IGN);
    // Deno's handler replaced: it installs it only once, so watching can stop.
    if (
      (previous !== SIG_IGN && previous !== SIG_DFL) ||
      Date.now() - startedAt > INSPECTOR_HANDLER_DEADLINE_MS
    ) {
      stop();
    }
  };
  const timer = setInterval(ignore, GUARD_POLL_MS);
  timer.unref();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    libc!.close();
  };
  ignore();
  return stop;
}
