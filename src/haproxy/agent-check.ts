/**
 * HAProxy's agent-check, served: HAProxy connects (`agent-check agent-port P` on a server line),
 * reads one line and the connection is closed. The line comes from the agent's last heartbeat,
 * written the moment a connection opens: nothing a client does (send nothing, send slowly,
 * connect a thousand times) reaches the heartbeats, and connections are few and short.
 */
import { listen } from "../listen.ts";
import type { Server, Socket } from "node:net";
import type { AgentStatus } from "../status.ts";

/** Connections answered at once, at most; more are closed unanswered. */
const MAX_CONNECTIONS = 64;
/** A client that has not gone after this long is cut off. */
const TIMEOUT_MS = 2_000;

export async function serveAgentCheck(
  address: { host: string; port: number },
  status: AgentStatus,
): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import("node:net");
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    socket.on("error", () => {});
    if (open.size >= MAX_CONNECTIONS) return socket.destroy();
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy());
    socket.end(`${status.agentCheckLine()}\n`);
  });
  const port = await listen(server, address);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        open.forEach((socket) => socket.destroy());
        server.close(() => resolve());
      }),
  };
}
