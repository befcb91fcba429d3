/**
 * The local address the kernel sends from toward a destination, asked through libc, for Deno:
 * its node:dgram reports a connected socket's address as 0.0.0.0 (or ::). A UDP socket is
 * connected to the destination (which sends nothing) and getsockname() read back.
 *
 * Linux only: the constants and the sockaddr layouts below are Linux's.
 */
import process from "node:process";
import { openLibc } from "../libc.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
/** sockaddr_in6 is the larger: family, port, flowinfo, 16 bytes of address, scope id. */
const SOCKADDR_BYTES = 28;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  connect(fd: number, address: Uint8Array, length: number): number;
  getsockname(fd: number, address: Uint8Array, length: Uint32Array): number;
  close(fd: number): number;
  if_nametoindex(name: Uint8Array): number;
}

/** The part of Deno's FFI this uses, so that it type-checks on any runtime. */
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Libc };
}

let opened: Libc | undefined | null;

/** libc through Deno's FFI; null where there is none (not Deno, not Linux, no --allow-ffi). */
function libc(): Libc | null {
  if (opened !== undefined) return opened;
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  try {
    opened = deno && process.platform === "linux"
      ? openLibc((path) =>
        deno.dlopen(path, {
          socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
          connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
          getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
          close: { parameters: ["i32"], result: "i32" },
          if_nametoindex: { parameters: ["buffer"], result: "u32" },
        }).symbols
      )
      : null;
  } catch {
    opened = null; // no FFI: no source address, as before
  }
  return opened;
}

/**
 * The local address the kernel would send from to `host` (IPv6 with its `%zone`), or undefined
 * where libc cannot be asked or there is no route.
 */
export function routeSourceByLibc(host: string, family: 4 | 6): string | undefined {
  const c = libc();
  if (!c) return undefined;
  const [address, zone] = host.split("%");
  const sockaddr = new Uint8Array(SOCKADDR_BYTES);
  const view = new DataView(sockaddr.buffer);
  view.setUint16(0, family === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, 9, false); // any port: only the route matters
  if (family === 4) sockaddr.set(address.split(".").map(Number), 4);
  else {
    sockaddr.set(ipv6Bytes(address), 8);
    if (zone) {
      const index = /^\d+$/.test(zone)
        ? Number(zone)
        : c.if_nametoindex(new TextEncoder().encode(`${zone}\0`));
      view.setUint32(24, index, true);
    }
  }
  const fd = c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const length = family === 4 ? 16 : SOCKADDR_BYTES;
    if (c.connect(fd, sockaddr, length) !== 0) return undefined;
    const local = new Uint8Array(SOCKADDR_BYTES);
    if (c.getsockname(fd, local, new Uint32Array([SOCKADDR_BYTES])) !== 0) return undefined;
    return family === 4 ? [...local.subarray(4, 8)].join(".") : ipv6Text(local.subarray(8, 24));
  } finally {
    c.close(fd);
  }
}

/** The 16 bytes of an IPv6 address in text (`::` and a trailing dotted IPv4 part allowed). */
export function ipv6Bytes(text: string): Uint8Array {
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  const hex = dotted
    ? text.slice(0, -dotted.length) +
      ((([a, b, c, d]) => `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`)(
        dotted.split(".").map(Number),
      ))
    : text;
  const [head, tail] = hex.split("::");
  const groups = (part?: string) => part ? part.split(":").map((group) => parseInt(group, 16)) : [];
  const start = groups(head);
  const end = groups(tail);
  const all = [...start, ...Array(8 - start.length - end.length).fill(0), ...end];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => bytes.set([group >> 8, group & 0xff], 2 * i));
  return bytes;
}

/** 16 bytes as IPv6 text the way runtimes print a peer (RFC 5952: lower case, `::` once). */
export function ipv6Text(bytes: Uint8Array): string {
  const groups = Array.from(
    { length: 8 },
    (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16),
  );
  // The URL parser writes IPv6 hosts in exactly that form.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}
