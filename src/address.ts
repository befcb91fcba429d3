/**
 * Destination addresses, `HOST:PORT`, read as mod_heartbeat's HeartbeatAddress reads them
 * (apr_parse_addr_port), with its messages for the same mistakes.
 */
import { isIPv4 } from "node:net";
import { lookup } from "node:dns/promises";

export interface Destination {
  /** An IPv4 address: a multicast group or a unicast host. */
  host: string;
  port: number;
}

export type AddressParse =
  | { ok: true; host: string; port: number }
  | { ok: false; error: string };

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

export function parseAddress(text: string): AddressParse {
  const unparseable = { ok: false, error: "Unable to parse address." } as const;
  if (/^[0-9]+$/.test(text)) {
    return validPort(text) ? { ok: false, error: "No host provided in address" } : unparseable;
  }
  const hostAndPort = /^(.*):([0-9]+)$/.exec(text);
  if (!hostAndPort) {
    return text === "" || text.startsWith(":") ? unparseable
      : { ok: false, error: "No port provided in address" };
  }
  const [, host, port] = hostAndPort;
  if (host.startsWith("[")) {
    return { ok: false, error: "Unable to parse address. IPv6 is not supported: use IPv4, as mod_heartbeat does." };
  }
  if (host === "" || !validPort(port) || !(isIPv4(host) || HOST_NAME.test(host))) return unparseable;
  return { ok: true, host, port: Number(port) };
}

function validPort(text: string): boolean {
  const port = Number(text);
  return port >= 1 && port <= 65535;
}

/** Every IPv4 address of `host`, sorted, by the system's resolver (hosts file, DNS). */
export async function lookupAll(host: string): Promise<string[]> {
  if (isIPv4(host)) return [host];
  return (await lookup(host, { all: true, family: 4 })).map((entry) => entry.address).sort();
}

export function isMulticast(ipv4: string): boolean {
  const first = Number(ipv4.split(".")[0]);
  return first >= 224 && first <= 239;
}

export function formatDestination(destination: Destination): string {
  return `${destination.host}:${destination.port}`;
}
