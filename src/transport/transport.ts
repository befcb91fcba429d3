/** The contract each runtime's UDP adapter implements, as `openUdpTransport` and `openUdpListener`. */
import { type Destination, familyOf, isMulticast } from "../address.ts";

export const ADAPTERS = ["deno", "bun", "node"] as const;
export type AdapterName = typeof ADAPTERS[number];

export interface UdpTransportOptions {
  /** IPv4 or IPv6: one socket sends to one family. Default 4. */
  family?: 4 | 6;
  /** IP_MULTICAST_TTL (IPv6: the hop limit): how many routers a multicast heartbeat may cross (1: this link only). */
  ttl: number;
  /** IP_MULTICAST_LOOP: deliver multicast to listeners on this host too, as mod_heartbeat does. */
  loopback: boolean;
  /**
   * IPv4: the local address whose interface multicast leaves by. The socket is bound to it too,
   * so it is also the source address of every heartbeat. (IPv6 names the link in the
   * destination: `[ff02::1234%eth0]`.)
   */
  interfaceAddress?: string;
}

/**
 * Deno sets no IPv6 multicast hop limit but the system's 1. The adapters know no settings: the
 * caller names the one to change, as the operator gave it.
 */
export class HopLimitUnsupported extends Error {
  constructor() {
    super("Deno cannot set the IPv6 multicast hop limit: ask for 1, or run under Bun");
  }
}

export interface UdpTransport {
  readonly adapter: AdapterName;
  /** Sends one datagram; rejects with the system's error when it cannot be sent. */
  send(payload: Uint8Array, to: Destination): Promise<void>;
  close(): Promise<void>;
}

export type OpenUdpTransport = (options: UdpTransportOptions) => Promise<UdpTransport>;

export interface UdpListenOptions {
  /** A multicast group to join (the socket is bound to it, as mod_heartmonitor does), or a
   * local unicast address to bind; IPv4 or IPv6. */
  address: string;
  port: number;
  /** IPv4 group: the local address of the interface to join it on (default: by route). */
  interfaceAddress?: string;
  /** IPv6 group: the interface to join it on, `eth0`. */
  zone?: string;
  /** SO_RCVBUF to ask for, in bytes; the kernel may give less (net.core.rmem_max). Default: the
   * system's (net.core.rmem_default). */
  receiveBuffer?: number;
}

/** How a listener for `options` binds and joins, the same on every runtime. */
export function listenBinding(options: UdpListenOptions): {
  v6: boolean;
  /** Whether the address is a multicast group to join. */
  group: boolean;
  /** An IPv6 group is joined on its link, so the socket takes the port on every address. */
  bindAddress: string;
  /** Where sockets' addMembership joins: the IPv4 interface address, or `::%zone`. */
  joinInterface?: string;
} {
  const v6 = familyOf(options.address) === 6;
  const group = isMulticast(options.address);
  return {
    v6,
    group,
    bindAddress: v6 && group ? "::" : options.address,
    joinInterface: v6
      ? (options.zone ? `::%${options.zone}` : undefined)
      : options.interfaceAddress,
  };
}

export interface Datagram {
  data: Uint8Array;
  /** The sender's IPv4 address. */
  from: string;
}

export interface UdpListener {
  readonly adapter: AdapterName;
  /** When a receive buffer was asked for: the bytes the kernel gave. */
  readonly receiveBuffer?: number;
  close(): Promise<void>;
}

/** Receives datagrams until closed, calling `onDatagram` for each. */
export type OpenUdpListener = (
  options: UdpListenOptions,
  onDatagram: (datagram: Datagram) => void,
) => Promise<UdpListener>;

export interface UdpAdapter {
  openUdpTransport: OpenUdpTransport;
  openUdpListener: OpenUdpListener;
}
