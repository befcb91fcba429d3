/**
 * The Deno adapter: Deno.listenDatagram (unstable; deno.json enables it, `deno compile` and
 * `deno run` elsewhere need --unstable-net).
 *
 * Deno has no call for the outgoing multicast interface: binding the socket to the interface's
 * address selects it (Linux routes multicast from a bound source address by that address's
 * interface). Deno sets the multicast TTL only through a group membership, so for a TTL other
 * than the system default of 1 the socket joins the first group it sends to; being bound to an
 * ephemeral port, it receives none of the group's heartbeats.
 */
import { readFileSync } from "node:fs";
import { isMulticast, socketHost } from "../address.ts";
import { setReceiveBuffer, udpSocketFd } from "./receive-buffer.ts";
import {
  HopLimitUnsupported,
  listenBinding,
  type OpenUdpListener,
  type OpenUdpTransport,
} from "./transport.ts";

/** The part of Deno's API this adapter uses, so that it type-checks on any runtime. */
interface DenoDatagramConn {
  send(data: Uint8Array, to: { transport: "udp"; hostname: string; port: number }): Promise<number>;
  receive(buffer?: Uint8Array): Promise<[Uint8Array, { hostname: string; port: number }]>;
  joinMulticastV4(
    group: string,
    networkInterface: string,
  ): Promise<{ setTTL(ttl: number): Promise<void> }>;
  joinMulticastV6(group: string, networkInterface: number): Promise<unknown>;
  readonly addr: { port: number };
  close(): void;
}
interface DenoUdpApi {
  listenDatagram?(options: {
    transport: "udp";
    hostname: string;
    port: number;
    loopback: boolean;
    reuseAddress?: boolean;
  }): DenoDatagramConn;
}

function denoApi(): Required<DenoUdpApi> {
  const deno = (globalThis as { Deno?: DenoUdpApi }).Deno;
  if (!deno?.listenDatagram) {
    throw new Error("Deno.listenDatagram is not available: run Deno with --unstable-net");
  }
  return deno as Required<DenoUdpApi>;
}

const SYSTEM_MULTICAST_TTL = 1;

// async with no await: a synchronous throw (no Deno API, an IPv6 TTL) becomes the rejection.
// deno-lint-ignore require-await
export const openUdpTransport: OpenUdpTransport = async (options) => {
  const v6 = options.family === 6;
  if (v6 && options.ttl !== SYSTEM_MULTICAST_TTL) {
    throw new HopLimitUnsupported();
  }
  const hostname = v6 ? "::" : options.interfaceAddress ?? "0.0.0.0";
  const conn = denoApi().listenDatagram({
    transport: "udp",
    hostname,
    port: 0,
    loopback: options.loopback,
  });
  let ttlSet: Promise<void> | undefined = options.ttl === SYSTEM_MULTICAST_TTL
    ? Promise.resolve()
    : undefined;
  return {
    adapter: "deno",
    async send(payload, to) {
      if (!ttlSet && isMulticast(to.host)) {
        ttlSet = conn.joinMulticastV4(to.host, hostname).then((membership) =>
          membership.setTTL(options.ttl)
        );
        ttlSet.catch(() => ttlSet = undefined);
      }
      if (isMulticast(to.host)) await ttlSet;
      await conn.send(payload, { transport: "udp", hostname: socketHost(to), port: to.port });
    },
    close() {
      conn.close();
      return Promise.resolve();
    },
  };
};

/** Large enough for any UDP datagram, so that an oversize one is seen whole and rejected. */
const MAX_DATAGRAM = 65536;

/** The index of a network interface (Linux), which Deno's IPv6 join takes; 0: the default. */
function interfaceIndex(name: string | undefined): number {
  if (!name) return 0;
  if (/^\d+$/.test(name)) return Number(name);
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, "utf8"));
  } catch {
    throw new Error(`no network interface '${name}'`);
  }
}

export const openUdpListener: OpenUdpListener = async (options, onDatagram) => {
  const { v6, group, bindAddress } = listenBinding(options);
  const conn = denoApi().listenDatagram({
    transport: "udp",
    hostname: bindAddress,
    port: options.port,
    loopback: true,
    reuseAddress: true,
  });
  let receiveBuffer: number | undefined;
  try {
    if (group && v6) await conn.joinMulticastV6(options.address, interfaceIndex(options.zone));
    else if (group) {
      await conn.joinMulticastV4(options.address, options.interfaceAddress ?? "0.0.0.0");
    }
    if (options.receiveBuffer) {
      // Deno does not say which descriptor is the socket's: found by its port (a process with
      // two sockets on one port, which the monitor never is, would have the first one's set).
      receiveBuffer = await setReceiveBuffer(udpSocketFd(conn.addr.port), options.receiveBuffer);
    }
  } catch (error) {
    conn.close();
    throw error;
  }
  let open = true;
  const receiving = (async () => {
    while (open) {
      try {
        const [data, from] = await conn.receive(new Uint8Array(MAX_DATAGRAM));
        onDatagram({ data, from: from.hostname });
      } catch {
        if (!open) return; // closed: receive rejects
      }
    }
  })();
  return {
    adapter: "deno",
    receiveBuffer,
    async close() {
      open = false;
      conn.close();
      await receiving;
    },
  };
};
