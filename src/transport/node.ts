/** The node:dgram adapter: Node itself, and the fallback on Deno and Bun, which provide it too. */
import { socketHost } from "../address.ts";
import { errorCode } from "../errors.ts";
import { detectRuntime } from "../runtime.ts";
import {
  grantedBytes,
  receiveBufferUnsupported,
  setReceiveBuffer,
  udpSocketFd,
} from "./receive-buffer.ts";
import {
  HopLimitUnsupported,
  listenBinding,
  type OpenUdpListener,
  type OpenUdpTransport,
} from "./transport.ts";

export const openUdpTransport: OpenUdpTransport = async (options) => {
  const v6 = options.family === 6;
  if (v6 && options.ttl !== 1 && detectRuntime() === "deno") {
    // Deno's node:dgram accepts the call and sends with hop limit 1 all the same (seen on the wire).
    throw new HopLimitUnsupported();
  }
  const { createSocket } = await import("node:dgram");
  const socket = createSocket({ type: v6 ? "udp6" : "udp4" });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: v6 ? "::" : options.interfaceAddress, port: 0 }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  // Errors also arrive through send callbacks; without a listener an 'error' event would throw.
  socket.on("error", () => {});
  try {
    socket.setMulticastTTL(options.ttl);
    socket.setMulticastLoopback(options.loopback);
    if (options.interfaceAddress && !v6) socket.setMulticastInterface(options.interfaceAddress);
  } catch (error) {
    socket.close();
    throw error;
  }
  return {
    adapter: "node",
    send: (payload, to) =>
      new Promise((resolve, reject) =>
        socket.send(payload, to.port, socketHost(to), (error) => error ? reject(error) : resolve())
      ),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
};

export const openUdpListener: OpenUdpListener = async (options, onDatagram) => {
  const { v6, group, bindAddress, joinInterface } = listenBinding(options);
  const { createSocket } = await import("node:dgram");
  const socket = createSocket({ type: v6 ? "udp6" : "udp4", reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: bindAddress, port: options.port }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  socket.on("error", () => {});
  let receiveBuffer: number | undefined;
  try {
    if (group) {
      try {
        socket.addMembership(options.address, joinInterface);
      } catch (error) {
        // Deno's node:dgram says `addMembership EINVAL` where the kernel said ENODEV (no interface
        // routes the group), as Bun's and the native adapters say: the group is checked already.
        throw errorCode(error) === "EINVAL"
          ? Object.assign(new Error("no such device"), { code: "ENODEV" })
          : error;
      }
      socket.setMulticastLoopback(true);
    }
    if (options.receiveBuffer) {
      // Linux only, as on the other adapters, though node:dgram could do it elsewhere.
      const unsupported = receiveBufferUnsupported();
      if (unsupported) throw new Error(unsupported);
      if (detectRuntime() === "deno") {
        // Deno's node:dgram (2.9.5) answers setRecvBufferSize without telling the kernel: `ss`
        // shows the socket's buffer unchanged. It is set on the socket itself, as the Deno adapter does.
        receiveBuffer = await setReceiveBuffer(
          udpSocketFd(socket.address().port),
          options.receiveBuffer,
        );
      } else {
        socket.setRecvBufferSize(options.receiveBuffer);
        receiveBuffer = grantedBytes(socket.getRecvBufferSize());
      }
    }
  } catch (error) {
    socket.close();
    throw error;
  }
  socket.on("message", (data, remote) => onDatagram({ data, from: remote.address }));
  return {
    adapter: "node",
    receiveBuffer,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
};
