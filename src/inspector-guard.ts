/**
 * Keeps Deno's inspector shut: Deno (2.9.2 and later) opens its V8 inspector, unauthenticated, on
 * 127.0.0.1:9229 when the process gets SIGUSR1 (its handler is installed 500 ms after start, with
 * no flag or variable to turn it off), and any local process could then attach and run code in
 * heartbeat. A signal blocked in a thread's mask is never delivered to it; the mask is inherited by
 * the threads it creates and kept across exec. So heartbeat, started by Deno with SIGUSR1
 * unblocked, executes itself again at once (same PID, arguments and environment) with SIGUSR1
 * blocked: from its first instruction on, every thread of the process that runs blocks SIGUSR1,
 * and no SIGUSR1 is ever taken. Child processes start with an empty mask (Rust's process spawning
 * resets it).
 *
 * This module does its work as it is evaluated, when it is the first module main.ts imports and
 * main.ts is the program: before the rest of heartbeat is even evaluated, long before Deno's
 * 500 ms, so the process that executes itself again never has Deno's handler either.
 */
import { isFfiRefused, openLibc } from "./libc.ts";
import { statusMask } from "./proc-status.ts";
import { detectRuntime } from "./runtime.ts";

const SIGUSR1_BIT = 1n << 9n; // SIGUSR1 is 10 on Linux, bit 9 of the masks in /proc/PID/status
const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
/** Set for the process executed again, so that it never tries twice; removed at once. */
const REEXECUTED = "HEARTBEAT_SIGUSR1_BLOCKED";

/** The part of Deno's API this uses, so that it type-checks on any runtime. */
interface DenoApi {
  mainModule: string;
  readTextFileSync(path: string): string;
  env: {
    get(name: string): string | undefined;
    set(name: string, value: string): void;
    delete(name: string): void;
  };
  dlopen(path: string, symbols: {
    pthread_sigmask: { parameters: ["i32", "buffer", "pointer"]; result: "i32" };
    execv: { parameters: ["buffer", "buffer"]; result: "i32" };
  }): {
    symbols: {
      pthread_sigmask(how: number, set: Uint8Array, old: null): number;
      execv(path: Uint8Array, argv: BigUint64Array): number;
    };
    close(): void;
  };
  UnsafePointer: { of(buffer: Uint8Array): unknown; value(pointer: unknown): bigint };
}

/** Whether `status` (the text of /proc/PID/status) shows SIGUSR1 in its `field` mask. */
export function sigusr1In(status: string, field: "SigBlk" | "SigCgt" | "SigIgn"): boolean {
  return ((statusMask(status, field) ?? 0n) & SIGUSR1_BIT) !== 0n;
}

/** Whether this process's main thread blocks SIGUSR1 (false where /proc cannot tell). */
export function sigusr1Blocked(): boolean {
  try {
    return sigusr1In(readText("/proc/self/status"), "SigBlk");
  } catch {
    return false;
  }
}

function readText(path: string): string {
  return (globalThis as unknown as { Deno: DenoApi }).Deno.readTextFileSync(path);
}

/** A NUL-terminated copy of `text` for C. */
function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

/**
 * Executes this Deno process again with SIGUSR1 blocked, unless it already is blocked. Returns
 * only when it did not: then why not, or undefined when Deno's FFI is refused (signals.ts says
 * what to give); signals.ts then falls back to ignoring SIGUSR1, and says so.
 */
function reexecuteWithSigusr1Blocked(deno: DenoApi): string | undefined {
  const second = deno.env.get(REEXECUTED) !== undefined;
  // Not for heartbeat's children: only this process is the second execution.
  if (second) deno.env.delete(REEXECUTED);
  if (sigusr1Blocked()) return undefined;
  if (second) return "it was executed again with SIGUSR1 blocked, yet does not block it";
  let argv: string[];
  let libc: ReturnType<DenoApi["dlopen"]>;
  try {
    // Deno's own flags (run -A, --unstable-net) are not in Deno.args: the kernel has them all.
    argv = readText("/proc/self/cmdline").split("\0").slice(0, -1);
    libc = openLibc((path) =>
      deno.dlopen(path, {
        pthread_sigmask: { parameters: ["i32", "buffer", "pointer"], result: "i32" },
        execv: { parameters: ["buffer", "buffer"], result: "i32" },
      })
    );
  } catch (error) {
    return isFfiRefused(error) ? undefined : `cannot execute it again: ${(error as Error).message}`;
  }
  const { pthread_sigmask, execv } = libc.symbols;
  const set = new Uint8Array(128); // glibc's and musl's sigset_t hold up to 1024 signals
  set[1] = Number(SIGUSR1_BIT >> 8n);
  const strings = argv.map(cString); // kept referenced until execv has copied them
  const pointers = new BigUint64Array(strings.length + 1); // NULL-terminated
  strings.forEach((string, i) =>
    pointers[i] = deno.UnsafePointer.value(deno.UnsafePointer.of(string))
  );
  deno.env.set(REEXECUTED, "1");
  let failed = "pthread_sigmask failed";
  if (pthread_sigmask(SIG_BLOCK, set, null) === 0) {
    execv(cString("/proc/self/exe"), pointers);
    // Still here: execv failed. Only this thread blocks SIGUSR1, which keeps out no other thread.
    pthread_sigmask(SIG_UNBLOCK, set, null);
    failed = "execv failed";
  }
  deno.env.delete(REEXECUTED);
  libc.close();
  return `cannot execute it again: ${failed}`;
}

const deno = (globalThis as unknown as { Deno?: DenoApi }).Deno;
/** Why heartbeat, run by Deno, does not block SIGUSR1; undefined elsewhere (tests, Bun). */
export const sigusr1NotBlockedBecause =
  detectRuntime() === "deno" && deno?.mainModule === new URL("./main.ts", import.meta.url).href
    ? reexecuteWithSigusr1Blocked(deno)
    : undefined;
