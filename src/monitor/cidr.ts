/** IPv4 address ranges for --allow: `10.0.0.0/8`, or one address. */
import { isIPv4 } from "node:net";

export interface Cidr {
  text: string;
  network: number;
  mask: number;
}

/** The range `text` names; throws an Error saying what is wrong. */
export function parseCidr(text: string): Cidr {
  const parts = text.split("/");
  const [address, bits = "32"] = parts;
  const length = /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (parts.length > 2 || !isIPv4(address) || !(length >= 0 && length <= 32)) {
    throw new Error("give an IPv4 address or range, e.g. 10.0.0.0/8");
  }
  const mask = length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0;
  return { text, network: (ipv4Number(address) & mask) >>> 0, mask };
}

export function inCidr(ip: string, range: Cidr): boolean {
  return isIPv4(ip) && ((ipv4Number(ip) & range.mask) >>> 0) === range.network;
}

/** An IPv4 address as the 32-bit number it stands for. */
export function ipv4Number(ip: string): number {
  return ip.split(".").reduce((value, part) => value * 256 + Number(part), 0);
}

/** A server, or servers, a balancer may be given: `ADDR`, `ADDR:PORT` or `CIDR` (--nginx-server). */
export interface ServerRange {
  text: string;
  range: Cidr;
  port?: number;
}

/** `ADDR`, `ADDR:PORT` or `CIDR`; throws an Error saying what is wrong. */
export function parseServerRange(text: string): ServerRange {
  const withPort = /^([^/:]+):(\d{1,5})$/.exec(text);
  const port = withPort ? Number(withPort[2]) : undefined;
  if (port !== undefined && !(port >= 1 && port <= 65535)) {
    throw new Error("give a port from 1 to 65535");
  }
  try {
    return { text, range: parseCidr(withPort ? withPort[1] : text), port };
  } catch {
    throw new Error("give an IPv4 address, ADDR:PORT, or a range, e.g. 10.0.0.0/24");
  }
}
