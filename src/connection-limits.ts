/**
 * The bounds every TCP side here puts on its clients (the monitor's HTTP, the agent's --http and
 * its agent-check): connections open at once, in all and from one address, and an absolute
 * deadline from the connection's opening. One client, however it behaves (opening connection
 * after connection, sending a byte a second, sending nothing), holds at most its own few slots for
 * a few seconds each: the others are still answered, and the heartbeats, which never wait on a
 * client, go on.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ConnectionBounds {
  /** Connections open at once, at most: past it, new ones are closed at once. */
  total: number;
  /** Connections open at once from one address, at most. */
  perAddress: number;
  /**
   * A connection is closed this long after it opened, whatever it sends; over HTTP, an answer
   * starts this time again, for the next request a kept-alive connection brings.
   */
  deadlineMs: number;
}

/** The monitor's and the agent's HTTP sides. */
export const HTTP_BOUNDS: ConnectionBounds = { total: 128, perAddress: 16, deadlineMs: 10_000 };

/** HAProxy's agent-check: one line, written as the connection opens. */
export const AGENT_CHECK_BOUNDS: ConnectionBounds = { total: 64, perAddress: 8, deadlineMs: 2_000 };

export type ConnectionRefusal = "too-many-connections" | "too-many-from-address";

/** A connection let in: `renew` starts its deadline again, `release` gives its slot back. */
export interface Admission {
  renew(): void;
  release(): void;
}

export class ConnectionLimits {
  readonly bounds: ConnectionBounds;
  /** Told of each connection refused, with the address to log: whose connections fill the slots. */
  readonly #refused: (reason: ConnectionRefusal, address: string, detail: string) => void;
  readonly #open = new Map<string, number>();
  #total = 0;

  constructor(
    bounds: ConnectionBounds,
    refused: (reason: ConnectionRefusal, address: string, detail: string) => void,
  ) {
    this.bounds = bounds;
    this.#refused = refused;
  }

  /**
   * Lets a connection from `address` in, with `close` called at its deadline; or, past a bound,
   * undefined (the caller closes it).
   */
  admit(address: string | undefined, close: () => void): Admission | undefined {
    const from = hostOf(address);
    const fromThere = this.#open.get(from) ?? 0;
    if (fromThere >= this.bounds.perAddress) {
      this.#refused("too-many-from-address", from, `${fromThere} open from it`);
      return undefined;
    }
    if (this.#total >= this.bounds.total) {
      // Whoever is refused here is a victim as likely as not: name the address holding most.
      const [most, count] = [...this.#open].reduce((a, b) => b[1] > a[1] ? b : a);
      this.#refused(
        "too-many-connections",
        from,
        `${this.#total} open, the most (${count}) from ${most}`,
      );
      return undefined;
    }
    this.#open.set(from, fromThere + 1);
    this.#total++;
    let released = false;
    const release = () => {
      clearTimeout(timer);
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#open.get(from) ?? 1) - 1;
      if (left > 0) this.#open.set(from, left);
      else this.#open.delete(from);
    };
    // The slot is free at the deadline even if the runtime never reports the close.
    const expire = () => (close(), release());
    // A deadline never keeps a stopping process alive.
    const arm = () => setTimeout(expire, this.bounds.deadlineMs).unref();
    let timer = arm();
    return {
      renew: () => {
        clearTimeout(timer);
        if (!released) timer = arm();
      },
      release,
    };
  }

  /** Connections open now. */
  get open(): number {
    return this.#total;
  }
}

/**
 * Puts `limits` on a node:http server: each connection is let in or closed as it is reported
 * (after `screen`, which may close it first), closed at its deadline, and given a new deadline by
 * each answer. Bun reports a connection at its first byte, or a second
 * after it opened (TCP_DEFER_ACCEPT: the kernel holds it until then); its deadline counts from
 * there.
 */
export function limitConnections(
  server: Server,
  limits: ConnectionLimits,
  screen: (address: string | undefined) => boolean = () => true,
): void {
  const admitted = new WeakMap<object, Admission>();
  server.on("connection", (socket: Socket) => {
    socket.on("error", () => {});
    const admission = screen(socket.remoteAddress)
      ? limits.admit(socket.remoteAddress, () => socket.destroy())
      : undefined;
    if (!admission) return socket.destroy();
    admitted.set(socket, admission);
    socket.once("close", admission.release);
  });
  server.on(
    "request",
    (request: IncomingMessage, response: ServerResponse) =>
      response.once("finish", () => admitted.get(request.socket)?.renew()),
  );
}

/** The address a connection comes from, as one host: no zone, IPv4 not mapped into IPv6. */
export function hostOf(address: string | undefined): string {
  if (address === undefined) return "?";
  // Only IPv6 has a zone or a mapped IPv4: no regular expression for each IPv4 datagram.
  return address.includes(":")
    ? address.replace(/%.*$/, "").replace(/^::ffff:(?=\d+\.)/, "")
    : address;
}
