/** The node:dgram adapter: Node itself, and the fallback on Deno and Bun, which provide it too. */
import { createSocket } from "node:dgram";
import { isMulticast } from "../address.ts";
import type { OpenUdpListener, OpenUdpTransport } from "./transport.ts";

export const openUdpTransport: OpenUdpTransport = async (options) => {
  const socket = createSocket({ type: "udp4" });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: options.interfaceAddress, port: 0 }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  // Errors also arrive through send callbacks; without a listener an 'error' event would throw.
  socket.on("error", () => {});
  try {
    socket.setMulticastTTL(options.ttl);
    socket.setMulticastLoopback(options.loopback);
    if (options.interfaceAddress) socket.setMulticastInterface(options.interfaceAddress);
  } catch (error) {
    socket.close();
    throw error;
  }
  return {
    adapter: "node",
    send: (payload, to) =>
      new Promise((resolve, reject) =>
        socket.send(payload, to.port, to.host, (error) => error ? reject(error) : resolve())
      ),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
};

export const openUdpListener: OpenUdpListener = async (options, onDatagram) => {
  const socket = createSocket({ type: "udp4", reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: options.address, port: options.port }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  socket.on("error", () => {});
  try {
    if (isMulticast(options.address)) {
      socket.addMembership(options.address, options.interfaceAddress);
      socket.setMulticastLoopback(true);
    }
  } catch (error) {
    socket.close();
    throw error;
  }
  socket.on("message", (data, remote) => onDatagram({ data, from: remote.address }));
  return {
    adapter: "node",
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
};
