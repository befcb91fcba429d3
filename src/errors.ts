/**
 * One wording for each system error, on every runtime: `network is unreachable (ENETUNREACH)`,
 * whether Bun said `ENETUNREACH: network is unreachable, send` or Deno said `Network is
 * unreachable (os error 101)`.
 */
import { readFileSync } from "node:fs";
import { constants } from "node:os";

const WORDS: Readonly<Record<string, string>> = {
  EACCES: "permission denied",
  EADDRINUSE: "the address is in use",
  EADDRNOTAVAIL: "no local interface has this address",
  EAI_AGAIN: "the name could not be looked up now",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  EHOSTUNREACH: "host is unreachable",
  EINVAL: "invalid argument",
  EISDIR: "is a directory",
  EMFILE: "too many open files",
  EMSGSIZE: "message too long",
  ENETUNREACH: "network is unreachable",
  ENOBUFS: "no buffer space available",
  ENODEV: "no such device",
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

/**
 * `error` as an Error whose message is its one wording (`connection refused (ECONNREFUSED)`) and
 * which keeps its code, for a caller that names what failed (a URL, a listener) itself.
 */
export function systemError(error: unknown): Error {
  const code = errorCode(error);
  return Object.assign(new Error(describeError(error)), code ? { code } : {});
}

/**
 * What to do when a socket cannot listen: the error's one wording, and the usual way out for
 * the codes that have one (a multicast group no interface routes, a port below the first
 * unprivileged one, a port taken). A multicast listener's caller gives the interface setting's
 * name as the operator would give it (this module knows no settings).
 */
export function listenFailure(
  error: unknown,
  where:
    | { port: number; multicast: false }
    | { port: number; multicast: true; interfaceName: string },
): string {
  const code = errorCode(error);
  const first = firstUnprivilegedPort() ?? 1024;
  const hint = code === "ENODEV" && where.multicast
    ? `no interface routes multicast: add a route (ip route add 224.0.0.0/4 dev eth0) or give ${where.interfaceName} ADDRESS`
    : code === "EACCES" && where.port < first
    ? `ports below ${first} need root or CAP_NET_BIND_SERVICE`
    : code === "EADDRINUSE"
    ? "another process listens there (ss -lnp shows which)"
    : undefined;
  return hint ? `${describeError(error)}: ${hint}` : describeError(error);
}

/**
 * The first port Linux lets a process without CAP_NET_BIND_SERVICE bind
 * (net.ipv4.ip_unprivileged_port_start, 1024 unless changed); undefined where /proc does not tell.
 */
export function firstUnprivilegedPort(): number | undefined {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8"));
  } catch {
    return undefined;
  }
}
