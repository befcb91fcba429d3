/** The servers heard from, one entry per sender IP, as mod_heartmonitor keeps them. */
import type { Heartbeat } from "../codec.ts";
import { ipv4Number } from "./cidr.ts";

/** mod_heartmonitor drops servers silent for this long (SEEN_TIMEOUT). */
export const SEEN_TIMEOUT_MS = 30_000;
/** The port assumed when a heartbeat names none, as mod_heartmonitor does. */
export const DEFAULT_PORT = 80;

/** How a heartbeat came: a datagram, or a POST to the HTTP side. */
export type Via = "udp" | "http";

export interface ServerEntry {
  ip: string;
  ready: number;
  busy: number;
  port: number;
  /** Whether the heartbeat named its port (else 80 is assumed, as mod_heartmonitor does). */
  portGiven: boolean;
  /** When the last heartbeat came, on the monitor's clock (ms). */
  lastSeen: number;
  /** How it came; none for a server restored from a storage file and not heard since. */
  via?: Via;
}

export type Recorded = "added" | "updated" | "full";

export class ServerTable {
  readonly #servers = new Map<string, ServerEntry>();
  readonly #maxServers: number;

  constructor(maxServers: number) {
    this.#maxServers = maxServers;
  }

  /**
   * Records a heartbeat from `ip`. At the bound, servers already known keep being updated and
   * new ones are turned away ("full") until others expire.
   */
  record(ip: string, heartbeat: Heartbeat, now: number, via?: Via): Recorded {
    const known = this.#servers.has(ip);
    if (!known && this.#servers.size >= this.#maxServers) return "full";
    this.#servers.set(ip, {
      ip,
      ready: heartbeat.ready,
      busy: heartbeat.busy,
      port: heartbeat.port ?? DEFAULT_PORT,
      portGiven: heartbeat.port !== undefined,
      lastSeen: now,
      via,
    });
    return known ? "updated" : "added";
  }

  /** Removes the servers silent for longer than SEEN_TIMEOUT_MS; returns them. */
  expire(now: number): ServerEntry[] {
    const silent = [...this.#servers.values()].filter((entry) =>
      now - entry.lastSeen > SEEN_TIMEOUT_MS
    );
    for (const entry of silent) this.#servers.delete(entry.ip);
    return silent;
  }

  /** The servers, in address order. */
  entries(): ServerEntry[] {
    return [...this.#servers.values()].sort((a, b) => compareIPv4(a.ip, b.ip));
  }

  get size(): number {
    return this.#servers.size;
  }
}

/** IPv4 in numeric order, then IPv6 as text. */
function compareIPv4(a: string, b: string): number {
  return ipv4Number(a) - ipv4Number(b) || a.localeCompare(b);
}
