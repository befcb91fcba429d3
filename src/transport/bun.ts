/** The Bun adapter: Bun.udpSocket, which sets every multicast option directly. */
import { socketHost } from "../address.ts";
import { setReceiveBuffer } from "./receive-buffer.ts";
import { listenBinding, type OpenUdpListener, type OpenUdpTransport } from "./transport.ts";

/** The part of Bun's API this adapter uses, so that it type-checks on any runtime. */
interface BunUdpSocket {
  readonly fd: number;
  send(data: Uint8Array, port: number, address: string): boolean;
  setMulticastTTL(ttl: number): number;
  setMulticastLoopback(enabled: boolean): boolean;
  setMulticastInterface(interfaceAddress: string): boolean;
  addMembership(group: string, interfaceAddress?: string): boolean;
  close(): void;
}
interface BunUdpApi {
  udpSocket(options: {
    hostname: string;
    port: number;
    binaryType?: "buffer" | "uint8array";
    /** uSockets' socket flags (not in Bun's types; its node:dgram uses them). */
    flags?: number;
    socket: {
      error(socket: unknown, error: Error): void;
      data?(socket: unknown, data: Uint8Array, port: number, address: string): void;
    };
  }): Promise<BunUdpSocket>;
}

/**
 * uSockets' flag for SO_REUSEADDR alone. Not libuv's UV_UDP_REUSEADDR (4): to Bun, 4 means
 * SO_REUSEPORT (strace shows it), and Linux lets two UDP sockets share a port only when both set
 * the same one of the two; APR (mod_heartmonitor), Deno and node:dgram set SO_REUSEADDR.
 */
const REUSE_ADDRESS = 16;

function bunApi(): BunUdpApi {
  const bun = (globalThis as { Bun?: BunUdpApi }).Bun;
  if (!bun?.udpSocket) throw new Error("Bun.udpSocket is not available in this runtime");
  return bun;
}

export const openUdpTransport: OpenUdpTransport = async (options) => {
  const v6 = options.family === 6;
  const socket = await bunApi().udpSocket({
    hostname: v6 ? "::" : options.interfaceAddress ?? "0.0.0.0",
    port: 0,
    // Asynchronous socket errors are reported by send's result; this keeps them from throwing.
    socket: { error() {} },
  });
  try {
    socket.setMulticastTTL(options.ttl);
    socket.setMulticastLoopback(options.loopback);
    if (
      options.interfaceAddress && !v6 && !socket.setMulticastInterface(options.interfaceAddress)
    ) {
      throw new Error(`cannot send multicast by the interface of ${options.interfaceAddress}`);
    }
  } catch (error) {
    socket.close();
    throw error;
  }
  return {
    adapter: "bun",
    send(payload, to) {
      // false means the datagram was not queued (e.g. the socket buffer is full).
      if (!socket.send(payload, to.port, socketHost(to))) {
        return Promise.reject(new Error("the datagram was not sent (socket busy)"));
      }
      return Promise.resolve();
    },
    close() {
      socket.close();
      return Promise.resolve();
    },
  };
};

export const openUdpListener: OpenUdpListener = async (options, onDatagram) => {
  const { group, bindAddress, joinInterface } = listenBinding(options);
  const socket = await bunApi().udpSocket({
    hostname: bindAddress,
    port: options.port,
    // SO_REUSEADDR, as the Deno and node:dgram adapters set it and mod_heartmonitor does, so that
    // the monitor can share a group's port with mod_heartmonitor or another monitor on the host.
    flags: REUSE_ADDRESS,
    // A plain Uint8Array costs less to make than a Buffer: at 200k datagrams a second, it shows.
    binaryType: "uint8array",
    socket: {
      error() {},
      data: (_socket, data, _port, from) => onDatagram({ data, from }),
    },
  });
  let receiveBuffer: number | undefined;
  try {
    if (group && !socket.addMembership(options.address, joinInterface)) {
      throw new Error(`cannot join multicast group ${options.address}`);
    }
    if (options.receiveBuffer) {
      receiveBuffer = await setReceiveBuffer(socket.fd, options.receiveBuffer);
    }
  } catch (error) {
    socket.close();
    throw error;
  }
  return {
    adapter: "bun",
    receiveBuffer,
    close() {
      socket.close();
      return Promise.resolve();
    },
  };
};
