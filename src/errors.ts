/**
 * One wording for each system error, on every runtime: `network is unreachable (ENETUNREACH)`,
 * whether Bun said `ENETUNREACH: network is unreachable, send` or Deno said `Network is
 * unreachable (os error 101)`.
 */
import { constants } from "node:os";

const WORDS: Readonly<Record<string, string>> = {
  EACCES: "permission denied",
  EADDRINUSE: "the address is in use",
  EADDRNOTAVAIL: "no local interface has this address",
  EAI_AGAIN: "the name could not be looked up now",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  EHOSTUNREACH: "host is unreachable",
  EISDIR: "is a directory",
  EMFILE: "too many open files",
  EMSGSIZE: "message too long",
  ENETUNREACH: "network is unreachable",
  ENOBUFS: "no buffer space available",
  ENOENT: "no such file or directory",
  ENOSPC: "no space left on device",
  ENOTDIR: "not a directory",
  ENOTFOUND: "no such host",
  EPERM: "operation not permitted",
  EPIPE: "broken pipe",
  EROFS: "read-only file system",
  ETIMEDOUT: "timed out",
};

const ERRNO_NAMES = new Map(
  Object.entries(constants.errno).map(([name, number]) => [number, name]),
);

/** The system error code of `error` (`ENOENT`), from its code or its `(os error N)`. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && /^E[A-Z_]+$/.test(code)) return code;
  const number = /\(os error (\d+)\)/.exec(String((error as Error)?.message ?? ""))?.[1];
  return number ? ERRNO_NAMES.get(Number(number)) : undefined;
}

/** What went wrong, in one wording whatever the runtime: `no such file or directory (ENOENT)`. */
export function describeError(error: unknown): string {
  const code = errorCode(error);
  if (code && WORDS[code]) return `${WORDS[code]} (${code})`;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}
