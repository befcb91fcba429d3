/**
 * mod_lbmethod_heartbeat's model: the weight it gives a server it reads in the storage file, the
 * share of new requests each server or BalancerMember wins in its draw, and the members of each
 * balancer in an Apache config. The monitor's outputs weigh by it, and `heartbeat servers` shows it.
 */
import type { StoredServer } from "./storage.ts";
import type { ServerEntry } from "./table.ts";

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
export function weightOf(server: { ready: number; busy: number }): number {
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

/** HAProxy's largest server weight; nginx takes any, and gets the same scale. */
export const MAX_WEIGHT = 256;

/**
 * The weights a weighted balancer (HAProxy, nginx) should give these servers (one backend's
 * members), in proportion to what
 * mod_lbmethod_heartbeat would: ready, divided by 4 while busy is 0, 0 at ready=0 or when silent
 * for 10 s, scaled so that the largest is 256 and none that has a free slot is below 1 (a server
 * at ready=1-3 and busy=0 is 0 to mod_lbmethod_heartbeat, but HAProxy would answer 503 with only
 * those).
 */
export function balancerWeights(
  entries: readonly ServerEntry[],
  now: number,
): Map<ServerEntry, number> {
  const base = new Map(entries.map((entry) => {
    const fresh = now - entry.lastSeen < BALANCER_MAX_LASTSEEN * 1000;
    return [entry, fresh && entry.ready > 0 ? weightOf(entry) : undefined];
  }));
  const most = Math.max(1, ...[...base.values()].map((ready) => ready ?? 0));
  return new Map(
    [...base].map(([entry, ready]) => [
      entry,
      ready === undefined ? 0 : Math.max(1, Math.round((MAX_WEIGHT * ready) / most)),
    ]),
  );
}
