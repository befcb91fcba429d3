/**
 * mod_heartmonitor's storage file, which mod_lbmethod_heartbeat reads: one line per server,
 * `IP &ready=N&busy=M&lastseen=S&port=P`. Written here; read here as the balancer reads it.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
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
 * proxy runs as another user), renamed over it. Readers see the old file or the new one. The
 * temporary file is made here and nowhere else (O_EXCL, O_NOFOLLOW: never a file or symlink
 * someone put there), and its mode set on the open descriptor, never by path: a symlink swapped
 * in by whoever can rename in the folder is never followed. (That someone could still swap
 * the file before the rename: see storageFolderProblem.)
 */
export function writeFileAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`;
  let descriptor: number | undefined;
  try {
    descriptor = openSync(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o644,
    );
    fchmodSync(descriptor, 0o644); // whatever the umask
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length;) {
      written += writeSync(descriptor, bytes, written, bytes.length - written);
    }
    closeSync(descriptor);
    descriptor = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (descriptor !== undefined) closeSync(descriptor);
    try {
      unlinkSync(temporary);
    } catch { /* never created */ }
    throw error;
  }
}

/**
 * Why a folder is unsafe for the storage file, or undefined: one anybody may write to without
 * the sticky bit lets every local user rename over or swap the monitor's files there.
 */
export function storageFolderProblem(mode: number): string | undefined {
  return (mode & 0o002) && !(mode & 0o1000)
    ? `it is writable by everyone (mode ${
      (mode & 0o7777).toString(8).padStart(4, "0")
    }) without the sticky bit: any local user could swap the monitor's files there; use a folder only the monitor's user may write to, or chmod +t it`
    : undefined;
}

/**
 * Removes the temporary files writeFileAtomic left beside `path` in a process that is gone (a
 * monitor killed while writing); returns their paths.
 */
export function removeStaleTemporaries(path: string): string[] {
  const prefix = `${basename(path)}.tmp.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const pid = Number(name.startsWith(prefix) ? name.slice(prefix.length).split(".")[0] : NaN);
    if (!Number.isInteger(pid) || processAlive(pid)) return [];
    try {
      unlinkSync(join(dirname(path), name));
      return [join(dirname(path), name)];
    } catch {
      return [];
    }
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
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
  /** Whether the balancer draws among it: heard within 10 s (weight 0 or not). */
  up: boolean;
  /** The fraction of new requests it would get, 0 to 1. */
  share: number;
}

/** What the balancer weighs a server by: ready, divided by 4 while busy is 0. */
function weightOf(server: StoredServer): number {
  // "it likely just started up": the balancer divides ready by 4 while busy is 0.
  const ready = server.busy === 0 && server.ready !== 0
    ? Math.floor(server.ready / 4)
    : server.ready;
  return Math.max(0, ready);
}

/**
 * The fraction of find_best_hb's draw each entry wins, in draw order: `ap_random_pick(0,
 * openslots)` includes both ends and a later entry wins a tie, so every entry gets its weight in
 * picks and the last one, one more: weight+1 of openslots+1, even at weight 0. With no open slot
 * the balancer picks nobody (the proxy answers 503).
 */
function drawShares(weights: number[]): number[] {
  const openslots = weights.reduce((sum, weight) => sum + weight, 0);
  return weights.map((weight, i) =>
    openslots > 0 ? (weight + (i === weights.length - 1 ? 1 : 0)) / (openslots + 1) : 0
  );
}

/**
 * Who gets what in the file's own order, as mod_lbmethod_heartbeat would draw among servers
 * heard within 10 s if its members were the file's servers in that order.
 */
export function balancerShares(servers: StoredServer[]): Share[] {
  const weighted = servers.map((server) => {
    const up = server.lastseen < BALANCER_MAX_LASTSEEN;
    return { ...server, up, weight: up ? weightOf(server) : 0, share: 0 };
  });
  const drawn = weighted.filter((server) => server.up);
  drawShares(drawn.map((server) => server.weight)).forEach((share, i) => drawn[i].share = share);
  return weighted;
}

/** A BalancerMember: its URL as written, and its host as mod_proxy keeps it (lower-cased). */
export interface Member {
  url: string;
  host: string;
}

export interface MemberShare {
  /** The BalancerMember's URL. */
  member: string;
  /** The storage file's server whose address is the member's host, if there is one. */
  server?: StoredServer;
  /** Whether the balancer draws among it: its server heard within 10 s. */
  up: boolean;
  /** What it adds to the draw: its server's weight, once for each member on that host. */
  weight: number;
  /** The member every pick this member's weight wins goes to: the last member on its host. */
  picksTo: string;
  /** The fraction of new requests it gets, 0 to 1. */
  share: number;
}

/**
 * Who gets what, exactly as mod_lbmethod_heartbeat's find_best_hb draws: it goes through the
 * balancer's members in order and finds each one's server by the member's host alone (the
 * heartbeat's `port=` is never read), adding that server's weight to the draw once per member
 * and pointing the server at the member: so two members on one host (`:80` and `:8080`) count the
 * host's weight twice, and every pick of both goes to the later one. Servers heard but on no
 * member's host are not drawn (see heardElsewhere).
 */
export function memberShares(servers: StoredServer[], members: Member[]): MemberShare[] {
  // The balancer keeps one server per address; a later line for it wins.
  const byAddress = new Map(servers.map((server) => [server.ip, server]));
  const lastOnHost = new Map(members.map((member, i) => [member.host, i]));
  const rows = members.map((member): MemberShare => {
    const server = byAddress.get(member.host);
    const up = server !== undefined && server.lastseen < BALANCER_MAX_LASTSEEN;
    return {
      member: member.url,
      server,
      up,
      weight: up ? weightOf(server) : 0,
      picksTo: members[lastOnHost.get(member.host)!].url,
      share: 0,
    };
  });
  const drawn = rows.flatMap((row, i) => row.up ? [i] : []);
  drawShares(drawn.map((i) => rows[i].weight)).forEach((share, entry) => {
    rows[lastOnHost.get(members[drawn[entry]].host)!].share += share;
  });
  return rows;
}

/** The servers of a storage file that no member's host names: heard, but never drawn. */
export function heardElsewhere(servers: StoredServer[], members: Member[]): StoredServer[] {
  return servers.filter((server) => !members.some((member) => member.host === server.ip));
}

/**
 * The members of each balancer in an Apache config, in the order the balancer keeps them, by
 * host: `<Proxy "balancer://NAME">` sections' BalancerMember lines, and `BalancerMember
 * balancer://NAME URL` lines outside them.
 */
export function balancerMembers(
  directives: { name: string; args: string[]; sections: { name: string; args: string[] }[] }[],
): Map<string, Member[]> {
  const balancers = new Map<string, Member[]>();
  const name = (text: string) => text.replace(/\/+$/, "").toLowerCase();
  for (const directive of directives) {
    if (directive.name.toLowerCase() !== "balancermember") continue;
    const proxy = [...directive.sections].reverse().find((section) =>
      section.name.toLowerCase() === "proxy"
    );
    const [balancer, url] = proxy?.args[0]?.toLowerCase().startsWith("balancer://")
      ? [proxy.args[0], directive.args[0]]
      : [directive.args[0], directive.args[1]];
    if (!balancer?.toLowerCase().startsWith("balancer://") || !url) continue;
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    } catch {
      continue;
    }
    const key = name(balancer);
    balancers.set(key, [...(balancers.get(key) ?? []), { url, host }]);
  }
  return balancers;
}
