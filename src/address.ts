/**
 * Destination addresses, `HOST:PORT` or `[IPv6%zone]:PORT`, read as mod_heartbeat's
 * HeartbeatAddress reads them (apr_parse_addr_port), with its messages for the same mistakes.
 */
import { isIP, isIPv4, isIPv6 } from "node:net";

export interface Destination {
  /** An IPv4 or IPv6 address: a multicast group or a unicast host. */
  host: string;
  port: number;
  /** For IPv6: the interface (name or scope number) a link-local address is on, `eth0`. */
  zone?: string;
}

export type AddressParse =
  | { ok: true; host: string; port: number; zone?: string }
  | { ok: false; error: string };

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

export function parseAddress(text: string): AddressParse {
  const unparseable = { ok: false, error: "Unable to parse address." } as const;
  if (/^[0-9]+$/.test(text)) {
    return validPort(text)
      ? { ok: false, error: "No host provided in address" }
      : portOutOfRange(text);
  }
  const hostAndPort = /^(.*):([0-9]+)$/.exec(text);
  if (!hostAndPort) {
    return text === "" || text.startsWith(":")
      ? unparseable
      : { ok: false, error: "No port provided in address" };
  }
  const [, host, port] = hostAndPort;
  if (host.startsWith("[")) {
    // [IPv6] or [IPv6%zone], as in URLs: ff02::1234%eth0 names the link to use.
    const inner = /^\[([0-9A-Fa-f:.]+)(?:%([A-Za-z0-9_.-]+))?\]$/.exec(host);
    if (!inner || !isIPv6(inner[1])) return unparseable;
    if (!validPort(port)) return portOutOfRange(port);
    return {
      ok: true,
      host: inner[1],
      port: Number(port),
      ...(inner[2] ? { zone: inner[2] } : {}),
    };
  }
  if (isIPv6(host) || (host.includes(":") && isIPv6(host.replace(/%.*$/, "")))) {
    return {
      ok: false,
      error: "Unable to parse address. Put an IPv6 address in brackets: [ff02::1234%eth0]:27999",
    };
  }
  if (host === "" || !(isIPv4(host) || HOST_NAME.test(host))) return unparseable;
  if (!validPort(port)) return portOutOfRange(port);
  return { ok: true, host, port: Number(port) };
}

/** Apache's words, and which part is wrong: it says only "Unable to parse address." */
function portOutOfRange(port: string): AddressParse {
  return { ok: false, error: `Unable to parse address: port ${port} is not from 1 to 65535` };
}

function validPort(text: string): boolean {
  const port = Number(text);
  return port >= 1 && port <= 65535;
}

/** Every address of `host`, IPv4 (A) and IPv6 (AAAA), sorted, by the system's resolver (hosts file, DNS). */
export async function lookupAll(host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  const { lookup } = await import("node:dns/promises");
  return (await lookup(host, { all: true })).map((entry) => entry.address).sort();
}

export function familyOf(host: string): 4 | 6 {
  return isIPv6(host) ? 6 : 4;
}

/** The address as sockets take it: `ff02::1234%eth0` for a zoned IPv6 address. */
export function socketHost(destination: Destination): string {
  return destination.zone ? `${destination.host}%${destination.zone}` : destination.host;
}

export function isMulticast(ip: string): boolean {
  if (isIPv6(ip)) return /^ff/i.test(ip);
  const first = Number(ip.split(".")[0]);
  return first >= 224 && first <= 239;
}

export function formatDestination(destination: Destination): string {
  return isIPv6(destination.host)
    ? `[${socketHost(destination)}]:${destination.port}`
    : `${destination.host}:${destination.port}`;
}
