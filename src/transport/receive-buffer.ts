/**
 * SO_RCVBUF, the socket receive buffer, where the runtime's UDP API has no option for it
 * (Bun.udpSocket, Deno.listenDatagram): set through libc's setsockopt on the socket's file
 * descriptor. A burst of heartbeats larger than the buffer is dropped by the kernel before the
 * monitor sees it, so a busy monitor may want more than the system default
 * (net.core.rmem_default); the kernel caps what a process may ask for at net.core.rmem_max.
 *
 * Linux only: the constants below are Linux's, and Deno's socket is found through /proc.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { isFfiRefused, openLibc } from "../libc.ts";

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;

/** Why the receive buffer cannot be set on this system, or undefined when it can. */
export function receiveBufferUnsupported(): string | undefined {
  return process.platform === "linux"
    ? undefined
    : `setting the receive buffer is supported on Linux only; this is ${process.platform}`;
}

/**
 * The buffer the kernel gave, from what getsockopt(SO_RCVBUF) reports: Linux reports twice what
 * it grants for data (the other half is its own bookkeeping), and grants at most
 * net.core.rmem_max.
 */
export function grantedBytes(reported: number): number {
  return Math.floor(reported / 2);
}

interface Libc {
  setsockopt(fd: number, level: number, name: number, value: Int32Array, length: number): number;
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: Int32Array,
    length: Uint32Array,
  ): number;
}

/** libc's setsockopt and getsockopt, through Bun's FFI or Deno's. */
async function libc(): Promise<Libc> {
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  // A name in a variable: Deno's type checker would otherwise try to resolve Bun's module.
  const bunFfi = "bun:ffi";
  const bun = deno ? undefined : await import(bunFfi) as BunFfi;
  try {
    return openLibc((path) =>
      deno
        ? deno.dlopen(path, {
          setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
          getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
        }).symbols
        : bun!.dlopen(path, {
          setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
          getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
        }).symbols
    );
  } catch (error) {
    if (isFfiRefused(error)) {
      throw new Error("setting the receive buffer needs --allow-ffi (or -A) on Deno");
    }
    throw new Error(`cannot load libc to set the receive buffer: ${(error as Error).message}`);
  }
}

/** The part of Deno's and of Bun's FFI this uses, so that it type-checks on any runtime. */
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Libc };
}
interface BunFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Libc };
}

/**
 * Asks for `bytes` of receive buffer on socket `fd`; resolves to what the kernel gave, which is
 * less when net.core.rmem_max caps it.
 */
export async function setReceiveBuffer(fd: number, bytes: number): Promise<number> {
  const unsupported = receiveBufferUnsupported();
  if (unsupported) throw new Error(unsupported);
  const { setsockopt, getsockopt } = await libc();
  const value = new Int32Array([bytes]);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4) !== 0) {
    throw new Error(`setsockopt(SO_RCVBUF, ${bytes}) failed`);
  }
  const length = new Uint32Array([4]);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, length) !== 0) {
    throw new Error("getsockopt(SO_RCVBUF) failed");
  }
  return grantedBytes(value[0]);
}

/**
 * The file descriptor of this process's UDP socket bound to `port`, for a runtime that does not
 * say (Deno): the socket inodes /proc/net/udp lists on that port, matched against /proc/self/fd.
 */
export function udpSocketFd(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const table of ["/proc/self/net/udp", "/proc/self/net/udp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is fields[1] (ADDR:PORT in hex), the inode fields[9].
      if (fields[1]?.endsWith(`:${hexPort}`)) inodes.add(fields[9]);
    }
  }
  for (const fd of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (the descriptor readdir itself used)
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode && inodes.has(inode)) return Number(fd);
  }
  throw new Error(`cannot find the socket bound to port ${port} among this process's files`);
}
