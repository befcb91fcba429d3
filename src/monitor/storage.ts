/**
 * mod_heartmonitor's storage file, which mod_lbmethod_heartbeat reads: one line per server,
 * `IP &ready=N&busy=M&lastseen=S&port=P`. Written here; read here as the balancer reads it.
 */
import { chmodSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { parseFields } from "../codec.ts";
import { DEFAULT_PORT, type ServerEntry } from "./table.ts";

export function formatStorage(entries: ServerEntry[], now: number): string {
  return entries.map((entry) => {
    const lastseen = Math.max(0, Math.floor((now - entry.lastSeen) / 1000));
    return `${entry.ip} &ready=${entry.ready}&busy=${entry.busy}&lastseen=${lastseen}&port=${entry.port}\n`;
  }).join("");
}

/**
 * Replaces `path` with `text` at once: a temporary file beside it, readable by everyone (the
 * proxy runs as another user), renamed over it. Readers see the old file or the new one.
 */
export function writeFileAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(temporary, text, { mode: 0o644 });
    chmodSync(temporary, 0o644); // whatever the umask
    renameSync(temporary, path);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch { /* never created */ }
    throw error;
  }
}

export interface StoredServer {
  ip: string;
  ready: number;
  busy: number;
  /** Seconds since the last heartbeat; -1 when the line has none, as in the balancer. */
  lastseen: number;
  port: number;
}

/** The lines of a storage file as mod_lbmethod_heartbeat reads them (comments and lines without a space skipped, atoi numbers). */
export function parseStorage(text: string): StoredServer[] {
  return text.split("\n").filter((line) =>
    line !== "" && !line.startsWith("#") && line.includes(" ")
  ).map((line) => {
    const space = line.indexOf(" ");
    const fields = parseFields(line.slice(space + 1));
    const number = (key: string, fallback: number) =>
      fields.has(key) ? atoi(fields.get(key)!) : fallback;
    return {
      ip: line.slice(0, space),
      ready: number("ready", 0),
      busy: number("busy", 0),
      lastseen: number("lastseen", -1),
      port: number("port", DEFAULT_PORT),
    };
  });
}

/** C's atoi: optional spaces and sign, then digits; anything else stops it; no digits is 0. */
function atoi(text: string): number {
  const match = /^\s*([+-]?\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}

/** mod_lbmethod_heartbeat ignores servers last seen this many seconds ago or more. */
export const BALANCER_MAX_LASTSEEN = 10;

export interface Share extends StoredServer {
  /** The weight the balancer gives it: ready, divided by 4 when busy is 0; 0 when too old. */
  weight: number;
  /** The fraction of new requests it would get, 0 to 1. */
  share: number;
}

/** Who gets what, by mod_lbmethod_heartbeat's rules (for the servers that are balancer members). */
export function balancerShares(servers: StoredServer[]): Share[] {
  const weighted = servers.map((server) => {
    const fresh = server.lastseen < BALANCER_MAX_LASTSEEN;
    // "it likely just started up": the balancer divides ready by 4 while busy is 0.
    const ready = server.busy === 0 && server.ready !== 0
      ? Math.floor(server.ready / 4)
      : server.ready;
    return { ...server, weight: fresh ? Math.max(0, ready) : 0 };
  });
  const total = weighted.reduce((sum, server) => sum + server.weight, 0);
  return weighted.map((server) => ({ ...server, share: total > 0 ? server.weight / total : 0 }));
}
