/**
 * The agent's HTTP side (`--http ADDR:PORT`): GET /healthz, 200 while heartbeats get out, 503
 * with the reason otherwise (for Kubernetes probes and container health checks), and GET
 * /metrics in Prometheus' format. Answered from AgentStatus: asking costs the heartbeats nothing.
 */
import { listen } from "./listen.ts";
import type { Server } from "node:http";
import { agentMetrics, type AgentStatus } from "./status.ts";

export async function serveAgentHttp(
  address: { host: string; port: number },
  status: AgentStatus,
  build: Record<string, string>,
): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const server: Server = createServer((request, response) => {
    const reply = (code: number, body: string, type = "text/plain") => {
      response.writeHead(code, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
      response.end(body);
    };
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("Allow", "GET, HEAD");
      return reply(405, "Method Not Allowed\n");
    }
    if (path === "/healthz") {
      const { healthy, reason } = status.health();
      return reply(healthy ? 200 : 503, `${reason}\n`);
    }
    if (path === "/metrics") {
      return reply(200, agentMetrics(status, build), "text/plain; version=0.0.4");
    }
    reply(404, "Not Found: GET /healthz, /metrics\n");
  });
  server.setTimeout(10_000, (socket) => socket.destroy());
  const port = await listen(server, address);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
