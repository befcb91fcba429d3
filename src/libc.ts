/**
 * The C library, opened through the runtime's FFI, for the few calls no runtime API makes:
 * signal() (signals.ts, on Deno), setsockopt() (transport/receive-buffer.ts) and, on Deno,
 * connect() and getsockname() (senders/route-libc.ts).
 */

/** Where the C library is found: glibc and musl on Linux, then macOS. */
const LIBC_PATHS = ["libc.so.6", "libc.so", "libSystem.B.dylib"];

/** Thrown by Deno's FFI without --allow-ffi (or -A): no other path would do better. */
export function isFfiRefused(error: unknown): boolean {
  return (error as { name?: string }).name === "NotCapable";
}

/**
 * What `open` makes of the C library under the first name it opens by. Throws the last error
 * when none does, and at once when the runtime refuses FFI.
 */
export function openLibc<T>(open: (path: string) => T): T {
  let lastError: unknown;
  for (const path of LIBC_PATHS) {
    try {
      return open(path);
    } catch (error) {
      if (isFfiRefused(error)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}
