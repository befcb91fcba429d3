/**
 * HAProxy's agent-check, served: HAProxy connects (`agent-check agent-port P` on a server line),
 * reads one line and the connection is closed. The line comes from the agent's last heartbeat,
 * written the moment a connection opens: nothing a client does (send nothing, send slowly,
 * connect a thousand times) reaches the heartbeats, and connections are few and short
 * (src/connection-limits.ts: each closed 2 s after it opened, whatever it sends).
 */
import type { Admission, ConnectionLimits } from "../connection-limits.ts";
import { detectRuntime } from "../runtime.ts";
import type { AgentStatus } from "./status.ts";

export interface AgentCheckServer {
  port: number;
  close(): Promise<void>;
}

export function serveAgentCheck(
  address: { host: string; port: number },
  status: AgentStatus,
  limits: ConnectionLimits,
): Promise<AgentCheckServer> {
  // Each runtime's own sockets, not node:net: Deno's loses the line (EPIPE) to a client that
  // half-closed before it was written, as `socat - TCP:… </dev/null` does, and Bun's takes six
  // times as long over a burst of connections, time the heartbeats wait for.
  return detectRuntime() === "deno"
    ? serveOnDeno(address, status, limits)
    : serveOnBun(address, status, limits);
}

/** The part of Bun's API used here, so that this type-checks on any runtime. */
interface BunSocket {
  readonly remoteAddress: string;
  data: Admission | undefined;
  end(text: string): void;
  terminate(): void;
}
interface BunApi {
  listen(options: {
    hostname: string;
    port: number;
    socket: {
      open(socket: BunSocket): void;
      data(): void;
      close(socket: BunSocket): void;
      error(): void;
    };
  }): { readonly port: number; stop(closeActiveConnections: boolean): void };
}

function serveOnBun(
  address: { host: string; port: number },
  status: AgentStatus,
  limits: ConnectionLimits,
): Promise<AgentCheckServer> {
  const bun = (globalThis as { Bun?: BunApi }).Bun!;
  const listener = bun.listen({
    hostname: address.host,
    port: address.port,
    socket: {
      open(socket) {
        socket.data = limits.admit(socket.remoteAddress, () => socket.terminate());
        // Bun closes the socket once the line is out: the deadline is for one that never reads.
        if (socket.data) socket.end(`${status.agentCheckLine()}\n`);
        else socket.terminate();
      },
      data() {}, // dropped
      close: (socket) => socket.data?.release(),
      error() {},
    },
  });
  return Promise.resolve({
    port: listener.port,
    close: () => Promise.resolve(listener.stop(true)),
  });
}

/** The part of Deno's API used here, so that this type-checks on any runtime. */
interface DenoConn {
  readonly remoteAddr: { hostname?: string };
  write(bytes: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  read(buffer: Uint8Array): Promise<number | null>;
  close(): void;
}
interface DenoTcpListener extends AsyncIterable<DenoConn> {
  readonly addr: { port?: number };
  close(): void;
}

function serveOnDeno(
  address: { host: string; port: number },
  status: AgentStatus,
  limits: ConnectionLimits,
): Promise<AgentCheckServer> {
  const deno = (globalThis as {
    Deno?: { listen(options: { hostname: string; port: number }): DenoTcpListener };
  }).Deno!;
  const listener = deno.listen({ hostname: address.host, port: address.port });
  const open = new Set<DenoConn>();
  const answer = async (conn: DenoConn) => {
    const close = () => closeQuietly(conn);
    const admission = limits.admit(conn.remoteAddr.hostname, close);
    if (!admission) return close();
    open.add(conn);
    try {
      let line = new TextEncoder().encode(`${status.agentCheckLine()}\n`);
      while (line.length) line = line.subarray(await conn.write(line));
      await conn.closeWrite();
      // Closing with bytes unread would reset the connection, and the line could be lost with
      // it: what the client sends is read and dropped until it closes, or the deadline comes.
      const dropped = new Uint8Array(512);
      while (await conn.read(dropped) !== null) { /* dropped */ }
    } catch { /* the client went, or the deadline closed it */ }
    open.delete(conn);
    admission.release();
    close();
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) void answer(conn);
    } catch { /* the listener closed */ }
  })();
  return Promise.resolve({
    port: listener.addr.port ?? address.port,
    close: async () => {
      listener.close();
      open.forEach(closeQuietly);
      await accepting;
    },
  });
}

/** Closes `conn`, which its deadline may have closed already. */
function closeQuietly(conn: DenoConn): void {
  try {
    conn.close();
  } catch { /* closed already */ }
}
