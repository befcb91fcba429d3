/**
 * The local address each destination sees a heartbeat come from, which a signed heartbeat names
 * (`from=`) and the monitor checks against the sender: the kernel's choice by route, so it
 * differs between destinations (IPv4 and IPv6, or two links) and changes when the host is
 * renumbered or its routes change. Learned per destination from a connected UDP socket (no
 * packet is sent), and learned again every RELEARN_MS and after a send to it failed.
 */
import { familyOf } from "../address.ts";
import { routeSourceByLibc } from "./route-libc.ts";

/** How often each destination's source address is learned again: a renumbered host is believed within this. */
export const RELEARN_MS = 10_000;

/** A destination not sent to for this long is forgotten. */
const FORGET_UNUSED_MS = 6 * RELEARN_MS;

/** The local address the kernel would send from to `host` (with its zone); undefined where it does not say. */
export type RouteProbe = (host: string, family: 4 | 6) => Promise<string | undefined>;

export class SourceAddresses {
  readonly #known = new Map<
    string,
    {
      address?: string;
      learnedAt: number;
      usedAt: number;
      first?: Promise<void>;
      learning?: Promise<void>;
    }
  >();
  readonly #now: () => number;
  readonly #probe: RouteProbe;
  readonly #bound?: string;

  constructor(
    options: {
      now: () => number;
      probe?: RouteProbe;
      /** The IPv4 address the sockets are bound to (--interface): the source of every IPv4 heartbeat. */
      boundIPv4?: string;
    },
  ) {
    this.#now = options.now;
    this.#probe = options.probe ?? localAddressToward;
    this.#bound = options.boundIPv4;
  }

  /**
   * The address `host` sees heartbeats come from. The first time, once learned; later at once,
   * the address known so far, while it is learned again beside the heartbeats when stale.
   */
  async toward(to: { host: string; zone?: string }): Promise<string | undefined> {
    const family = familyOf(to.host);
    if (family === 4 && this.#bound) return this.#bound;
    const host = to.zone ? `${to.host}%${to.zone}` : to.host;
    const now = this.#now();
    let known = this.#known.get(host);
    if (!known) {
      // Addresses a name no longer resolves to go, as new ones come.
      for (const [other, { usedAt }] of this.#known) {
        if (now - usedAt > FORGET_UNUSED_MS) this.#known.delete(other);
      }
      known = { learnedAt: now, usedAt: now };
      known.first = this.#learn(host, family, known);
      this.#known.set(host, known);
    } else if (!known.learning && now - known.learnedAt >= RELEARN_MS) {
      known.learnedAt = now;
      void this.#learn(host, family, known);
    }
    known.usedAt = now;
    await known.first; // the first time only: a heartbeat never waits for a learning again
    return known.address;
  }

  /** A send to `to` failed: its route may have changed, so the next send learns it first. */
  forget(to: { host: string; zone?: string }): void {
    this.#known.delete(to.zone ? `${to.host}%${to.zone}` : to.host);
  }

  #learn(host: string, family: 4 | 6, known: { address?: string; learning?: Promise<void> }) {
    known.learning = this.#probe(host, family).then(
      (address) => {
        known.address = address;
      },
      () => {},
    ).finally(() => known.learning = undefined);
    return known.learning;
  }
}

/**
 * The local address the kernel sends from to `host`, from a UDP socket connected to it (which
 * sends nothing), on Deno through libc (its node:dgram says 0.0.0.0 or ::); undefined where
 * neither can tell or there is no route.
 */
async function localAddressToward(host: string, family: 4 | 6): Promise<string | undefined> {
  if ("Deno" in globalThis) return routeSourceByLibc(host, family);
  const { createSocket } = await import("node:dgram");
  const socket = createSocket(family === 4 ? "udp4" : "udp6");
  try {
    return await new Promise<string | undefined>((resolve) => {
      socket.once("error", () => resolve(undefined));
      // Any port will do: only the route matters.
      socket.connect(9, host, () => {
        const { address } = socket.address();
        resolve(address === "0.0.0.0" || address === "::" ? undefined : address);
      });
    });
  } finally {
    socket.close();
  }
}
